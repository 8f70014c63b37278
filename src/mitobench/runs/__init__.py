"""The run record: a run directory's layout (`RunDir`) and settings (`RunSpec`), read without
any training code."""
