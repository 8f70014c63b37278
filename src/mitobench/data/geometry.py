"""The patch geometry a model was trained on: side in pixels and microns per pixel.

A classifier only knows figures at the scale it saw. The named datasets declare theirs (128 px at
about 0.25 µm/px, 40x); a run records the geometry of its training data, an exported bundle
carries it, and `predict` and `slide` cut and resize new patches to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PatchGeometry:
    size: int
    """Side of a square patch in pixels."""
    mpp: float
    """Microns per pixel."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> PatchGeometry:
        """A recorded geometry; runs and bundles from before it was recorded used the paper's."""
        return cls(int(values["size"]), float(values["mpp"])) if values else PAPER_PATCH


PAPER_PATCH = PatchGeometry(128, 0.25)
"""AMi-Br's and AtNorM's patches: 128x128 px at about 0.25 µm/px (40x)."""
