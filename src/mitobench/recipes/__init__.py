"""Training recipes as data: `TrainConfig`, the packaged presets, augmentation steps (no torch)."""
