"""Model specs, one file per vendor, each exporting `SPECS`; the registry collects them once."""

from mitobench.models.spec import ModelSpec
from mitobench.models.zoo import baselines, bioptimus, kaiko, mahmood, owkin, paige, prov_gigapath

ALL_SPECS: tuple[ModelSpec, ...] = tuple(
    spec
    for vendor in (baselines, mahmood, paige, bioptimus, prov_gigapath, owkin, kaiko)
    for spec in vendor.SPECS
)
