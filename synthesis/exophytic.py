"""Where the outer (exophytic) part of an unclipped tumor may grow: fat and soft tissue only.

DiffTumor leaves half of the medium/large kidney tumors unclipped (the official STEP3 rule,
kept), so part of such a tumor lies outside the kidney. On a whole CT that part used to replace
whatever was there: liver, spleen, vertebrae (a large kidney tumor of seed 0 on a phantom CT
turned bone at ~1000 HU into ~150 HU). A tumor pushes fat and soft tissue aside; it does not
replace bone, gas or another organ. So the outer part may only replace voxels that

* hold fat or soft tissue: HU in ``SOFT_TISSUE_HU`` (fat starts near -200 HU; gas and lung are far
  below; cancellous bone, contrast-filled vessels and cortical bone are above 150 HU), and
* are not labelled as another structure, when the caller has labels (``other_organs``: e.g. the
  other labels of a multi-label mask). HU alone cannot tell liver or spleen (40-130 HU) from
  muscle, so without labels only bone and gas are protected.
"""
from __future__ import annotations

import numpy as np

from synthesis.errors import SynthesisInputError

SOFT_TISSUE_HU = (-200.0, 150.0)  # fat ... enhanced soft tissue; outside: gas/air, bone, dense contrast
ORGAN, REPLACEABLE = 1, 2  # values of the region array (0: left as it is)


def exophytic_region(ct_hu: np.ndarray, organ_mask: np.ndarray, other_organs: np.ndarray | None = None,
                     box: tuple[slice, ...] | None = None) -> np.ndarray:
    """uint8 region of ``box`` (default: the whole volume): ``ORGAN`` on organ voxels,
    ``REPLACEABLE`` where an exophytic tumor may replace the tissue, 0 elsewhere.

    Args:
        ct_hu, organ_mask: (X, Y, Z) CT in HU and organ mask.
        other_organs: optional (X, Y, Z) bool, voxels of other labelled structures (never replaced).
        box: slices of the part of the volume wanted.
    """
    box = box or tuple(slice(0, n) for n in ct_hu.shape)
    values = ct_hu[box]
    low, high = SOFT_TISSUE_HU
    organ = organ_mask[box] != 0
    replaceable = ~organ & (values >= low) & (values <= high)
    if other_organs is not None:
        replaceable &= other_organs[box] == 0
    return organ.view(np.uint8) * np.uint8(ORGAN) + replaceable.view(np.uint8) * np.uint8(REPLACEABLE)


def organ_reference_hu(ct_hu: np.ndarray, organ_mask: np.ndarray, boxes) -> float:
    """Median HU of the organ voxels in ``boxes`` (else of the whole organ): the tissue an
    exophytic tumor's outer part is drawn from."""
    values = np.concatenate([ct_hu[box][organ_mask[box] != 0] for box in boxes])
    if not values.size:
        values = ct_hu[organ_mask != 0]
    return float(np.median(values)) if values.size else 0.0


def per_crop_other_organs(name: str, ct_hu: np.ndarray, organ_mask: np.ndarray,
                          other_organs: np.ndarray | None) -> list[np.ndarray | None]:
    """The ``other_organs`` of each crop of a (B, X, Y, Z) batch (None each when not given), after
    checking that CT, organ mask and other organs share one (B, X, Y, Z) shape."""
    if np.ndim(ct_hu) != 4 or np.shape(organ_mask) != np.shape(ct_hu) or (
            other_organs is not None and np.shape(other_organs) != np.shape(ct_hu)):
        raise SynthesisInputError(f"{name}: expected (B, X, Y, Z) ct_hu, organ_mask (and other_organs) of one "
                                  f"shape, got {np.shape(ct_hu)}, {np.shape(organ_mask)}"
                                  + ("" if other_organs is None else f", {np.shape(other_organs)}"))
    return [None] * len(ct_hu) if other_organs is None else list(np.asarray(other_organs, dtype=bool))
