"""Preview PNGs of a cell's test predictions (the last stage of `benchmark.cell_pipeline`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from tumorbench_common.io import load_nifti, save_figure_atomic


def render_previews(dataset, case_ids: Sequence[str], pred_dir: Path, out_dir: Path,
                    n: int = 3) -> list[Path]:
    """PNG per case: the axial slice with most ground-truth tumor (else organ), CT in a
    soft-tissue window, ground truth contours in green, prediction in red.

    Returns the written files (cases without a prediction are skipped).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for case_id in list(case_ids)[:n]:
        pred_path = Path(pred_dir) / f"{case_id}.nii.gz"
        if not pred_path.is_file():
            continue
        ct = np.asarray(load_nifti(dataset.ct_path(case_id), "CT").dataobj, dtype=np.float32)
        gt = np.asarray(load_nifti(dataset.labels_path(case_id), "labels").dataobj)
        pred = np.asarray(load_nifti(pred_path, "prediction").dataobj)
        area = (gt == 2).sum(axis=(0, 1)) if (gt == 2).any() else (gt >= 1).sum(axis=(0, 1))
        z = int(np.argmax(area))
        fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
        ax.imshow(np.clip(ct[:, :, z].T, -175, 250), cmap="gray", origin="lower")
        for mask, color in ((gt, "lime"), (pred, "red")):
            for label, style in ((1, ":"), (2, "-")):
                if (mask[:, :, z] == label).any():
                    ax.contour((mask[:, :, z] == label).T, levels=[0.5], colors=color, linestyles=style)
        ax.set_title(f"{case_id} z={z}  green=truth red=pred", fontsize=8)
        ax.axis("off")
        written.append(save_figure_atomic(fig, Path(out_dir) / f"{case_id}.png", bbox_inches="tight"))
        plt.close(fig)
    return written
