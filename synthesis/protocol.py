"""The one interface the trainer uses for every synthetic regime (hu, difftumor).

A generator is constructed once per organ (it knows its organ variant, size-type
probabilities, device and weights) and is then called on a *batch* of crops, so that
DiffTumor can denoise many crops in one forward pass. Randomness is passed in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SynthesisOutput:
    """Result of one generator call on a batch of B crops.

    Attributes:
        ct_hu: (B, X, Y, Z) float32 CT in HU with the synthetic tumors.
        tumor_mask: (B, X, Y, Z) bool, the synthetic tumor voxels.
        params: one JSON-serialisable dict per crop (key ``method`` names the generator), enough
            to replay that tumor: ``generator.replay(ct, organ_mask, params)`` on the same crop.
    """

    ct_hu: np.ndarray
    tumor_mask: np.ndarray
    params: tuple[dict[str, Any], ...]


@runtime_checkable
class TumorGenerator(Protocol):
    """Adds one synthetic tumor (of a randomly drawn size type) to each crop.

    Args of ``__call__``:
        ct_hu: (B, X, Y, Z) float CT crops in HU (not windowed). Not modified.
        organ_mask: (B, X, Y, Z) bool organ masks of the crops. Not modified.
        spacing: voxel spacing in mm, shared by the batch.
        rng: numpy Generator, the only source of randomness.

    Optional: ``replay(ct_hu, organ_mask, params)`` on one (X, Y, Z) crop -> (ct_hu, tumor_mask),
    the tumor of one ``SynthesisOutput.params`` entry again (``tumorbench synthesize --replay``).
    ``warm_up()``, called once in the trainer's process before DataLoader workers
    fork (HuGenerator loads its compiled kernels there, so the workers share them).
    """

    name: str
    organ: str

    def __call__(
        self,
        ct_hu: np.ndarray,
        organ_mask: np.ndarray,
        spacing: Sequence[float],
        rng: np.random.Generator,
    ) -> SynthesisOutput: ...
