"""Volume overlap (Dice) with explicit empty-mask conventions: the one Dice of the project, used by
the trainer's validation (models) and the evaluation (benchmark.metrics)."""
from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient of two binary masks of equal shape.

    Args:
        pred: bool (or 0/1) array, predicted mask.
        ref: bool (or 0/1) array, reference mask.

    Returns:
        2|P∩R| / (|P| + |R|) in [0, 1]; 1.0 when both are empty, 0.0 when one is.
    """
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref shapes differ: {pred.shape} vs {ref.shape}")
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(ref))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & ref)) / total
