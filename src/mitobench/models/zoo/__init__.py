"""Model specs, one file per vendor; importing this package registers them all."""

from mitobench.models.zoo import (  # noqa: F401
    baselines,
    bioptimus,
    kaiko,
    mahmood,
    owkin,
    paige,
    prov_gigapath,
)
