"""Figs 11-13 style qualitative grids and lesion locations, read from NIfTI files only.

Predictions: ``<results_dir>/predictions/<organ>/<case_id>.nii.gz`` (uint8 0/1/2);
CT/labels: ``<dataset_dir>/cases/<case_id>/{ct,labels}.nii.gz``. Images are reoriented to RAS and
shown axially in radiological convention (patient right on image left, anterior up), abdomen
window W400/L40."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reports.detection import case_outcomes, missed
from reports.loader import Cell, GridData
from reports.palette import GT_COLOR, backbone_label, regime_colors, regime_label, sort_regimes
from reports.plots import Figure, _plt, save_figure
from tumorbench_common.mlflow_tags import DATASET_DIR, RESULTS_DIR

WINDOW = (40.0, 400.0)  # level, width (HU)
TUMOR = 2


def _load(path: Path):
    """Canonical (RAS) array and voxel size, or None when the file is absent/unreadable."""
    import nibabel as nib

    if not Path(path).is_file():
        return None
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        return np.asarray(img.dataobj), tuple(float(z) for z in img.header.get_zooms()[:3])
    except Exception:  # corrupt file: show a placeholder panel instead of failing the report
        return None


def disagreement(models: dict[str, dict]) -> float:
    """How much the models disagree on one case: detection split (2), FP split (1), DSC range."""
    if len(models) < 2:
        return 0.0
    detected = {not missed(c) for c in models.values() if c.get("lesions")}
    has_fp = {bool(c.get("false_positives")) for c in models.values()}
    dscs = [c["tumor_dsc"] for c in models.values() if c.get("tumor_dsc") is not None]
    spread = (max(dscs) - min(dscs)) if dscs else 0.0
    return 2.0 * (len(detected) == 2) + 1.0 * (len(has_fp) == 2) + spread


def choose_cases(grid: GridData, organ: str, n_cases: int = 3) -> list[tuple[str, dict]]:
    """The ``n_cases`` cases of ``organ`` where the backbone x regime models disagree most."""
    scored = [(disagreement(e["models"]), case_id, e) for (o, case_id), e in case_outcomes(grid).items()
              if o == organ and len(e["models"]) >= 2]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [(case_id, entry) for score, case_id, entry in scored[:n_cases] if score > 0]


def _pred_path(cell: Cell, organ: str, case_id: str) -> Path:
    return Path(cell.tag(RESULTS_DIR)) / "predictions" / organ / f"{case_id}.nii.gz"


def _case_paths(cell: Cell, case_id: str) -> tuple[Path, Path]:
    root = Path(cell.tag(DATASET_DIR)) / "cases" / case_id
    return root / "ct.nii.gz", root / "labels.nii.gz"


def best_slice(gt: np.ndarray | None, preds: list[np.ndarray]) -> int:
    """Axial index with the largest tumor cross-section (GT first, else predictions, else organ)."""
    for volumes in ([gt] if gt is not None else [], preds):
        area = sum((v == TUMOR).sum(axis=(0, 1)) for v in volumes) if volumes else 0
        if np.any(area):
            return int(np.argmax(area))
    if gt is not None and (gt > 0).any():
        return int(np.argmax((gt > 0).sum(axis=(0, 1))))
    return (preds[0].shape[2] if preds else 1) // 2


def _crop_box(masks: list[np.ndarray], shape, margin: int = 10) -> tuple[slice, slice]:
    union = np.zeros(shape, bool)
    for mask in masks:
        union |= mask > 0
    if not union.any():
        return slice(None), slice(None)
    xs, ys = np.nonzero(union)
    return (slice(max(xs.min() - margin, 0), xs.max() + margin + 1),
            slice(max(ys.min() - margin, 0), ys.max() + margin + 1))


def _show(ax, ct2d, spacing, masks: list[tuple[np.ndarray, str, str]]):
    """Draw a CT slice [x, y] (radiological view) with contours (mask, colour, linestyle)."""
    level, width = WINDOW
    view = lambda a: a.T[::-1, ::-1]  # rows = anterior at top, columns = patient right on the left
    ax.imshow(view(ct2d), cmap="gray", vmin=level - width / 2, vmax=level + width / 2,
              aspect=spacing[1] / spacing[0], interpolation="nearest")
    for mask, color, style in masks:
        if mask.any():
            ax.contour(view(mask.astype(float)), levels=[0.5], colors=[color], linewidths=1.4, linestyles=style)
    ax.set_xticks([])
    ax.set_yticks([])


def row_data(case_id: str, entry: dict, organ: str, models: list[str]) -> dict:
    """Everything one row draws: the cropped slice, its voxel size, GT/organ masks and the models'
    cropped predictions (or ``missing``: why there is no CT)."""
    any_cell = next(iter(entry["cells"].values()))
    ct_path, label_path = _case_paths(any_cell, case_id)
    ct, labels = _load(ct_path), _load(label_path)
    preds = {m: _load(_pred_path(entry["cells"][m], organ, case_id)) if m in entry["cells"] else None for m in models}
    if ct is None:
        return {"case_id": case_id, "missing": f"{case_id}: CT not found\n{ct_path}"}
    gt = labels[0] if labels is not None else None
    z = best_slice(gt, [p[0] for p in preds.values() if p is not None])
    gt2d = gt[:, :, z] if gt is not None else np.zeros(ct[0].shape[:2], np.uint8)
    pred2d = {m: p[0][:, :, z] for m, p in preds.items() if p is not None and p[0].shape == ct[0].shape}
    box = _crop_box([gt2d] + [p == TUMOR for p in pred2d.values()], gt2d.shape)
    return {"case_id": case_id, "entry": entry, "z": z, "ct2d": ct[0][:, :, z][box], "spacing": ct[1],
            "gt_tumor": (gt2d == TUMOR)[box], "organ": (gt2d == 1)[box],
            "pred_tumor": {m: (p == TUMOR)[box] for m, p in pred2d.items()}}


def view_aspect(data: dict) -> float:
    """Displayed height / width of a row's slice in mm (rows = y, columns = x); 1 for a missing CT."""
    if "ct2d" not in data:
        return 1.0
    (nx, ny), (sx, sy) = data["ct2d"].shape, data["spacing"][:2]
    return (ny * sy) / (nx * sx)


def _row(axes, data: dict, models: list[str], colors: dict[str, str]):
    if "ct2d" not in data:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0.5, 0.5, data["missing"], ha="center", va="center", fontsize=7)
        return
    ct2d, spacing, gt_tumor, entry = data["ct2d"], data["spacing"], data["gt_tumor"], data["entry"]
    _show(axes[0], ct2d, spacing, [(gt_tumor, GT_COLOR, "solid"), (data["organ"], "#FFD400", "dotted")])
    axes[0].set_ylabel(f"{data['case_id']}\nslice z={data['z']}", fontsize=8)
    for ax, model in zip(axes[1:], models):
        if model not in data["pred_tumor"]:
            ax.axis("off")
            why = "prediction\nmissing" if model in entry["cells"] else "no finished\nrun"
            ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=8, color="grey",
                    transform=ax.transAxes)
            continue
        regime = model.split("·")[1]
        _show(ax, ct2d, spacing, [(gt_tumor, GT_COLOR, "dashed"), (data["pred_tumor"][model], colors[regime], "solid")])
        ax.set_xlabel(_outcome(entry["models"][model]), fontsize=8)


def _outcome(case: dict) -> str:
    dsc = "—" if case.get("tumor_dsc") is None else f"{100 * case['tumor_dsc']:.1f}%"
    if case.get("has_tumor"):
        return f"DSC {dsc}" + (" · missed" if missed(case) else "")
    return "no tumor · " + ("false positive" if case.get("false_positives") else "clean")


PANEL_WIDTH = 2.3  # inches per column
ROW_TEXT = 0.3  # inches under each row for the outcome line (xlabel)
HEADER = 0.5  # inches for the column titles


def grid_figure(rows: list[dict], models: list[str], colors: dict[str, str]):
    """Rows of panels whose heights follow each slice's aspect, so rows sit close together."""
    plt = _plt()
    aspects = [view_aspect(d) for d in rows]
    height = HEADER + sum(PANEL_WIDTH * a + ROW_TEXT for a in aspects)
    # "compressed" layout: matplotlib's engine for fixed-aspect image grids, it closes the gaps the
    # aspect leaves (the figure height above already follows the slices' aspect)
    fig, axes = plt.subplots(len(rows), len(models) + 1, figsize=(PANEL_WIDTH * (len(models) + 1), height),
                             squeeze=False, gridspec_kw={"height_ratios": aspects}, layout="compressed")
    for row_axes, data in zip(axes, rows):
        _row(row_axes, data, models, colors)
    axes[0][0].set_title("Ground truth", fontsize=9)
    for ax, model in zip(axes[0][1:], models):
        backbone, regime = model.split("·")
        ax.set_title(f"{backbone_label(backbone)}\n{regime_label(regime)}", fontsize=9, color=colors[regime])
    return fig


def model_order(grid: GridData, organ: str) -> list[str]:
    cells = [c for c in grid.cells.values() if c.organ == organ]
    return [f"{b}·{r}" for b in sorted({c.backbone for c in cells})
            for r in sort_regimes({c.regime for c in cells if c.backbone == b})]


def qualitative_figure(grid: GridData, organ: str, out: Path, n_cases: int = 3,
                       cases: list[tuple[str, dict]] | None = None, title: str | None = None) -> Figure | None:
    """Grid of axial slices: rows = cases, columns = ground truth + each backbone x regime."""
    chosen = cases if cases is not None else choose_cases(grid, organ, n_cases)
    if not chosen:
        return None
    models = model_order(grid, organ)
    colors = regime_colors(grid.values("regime"))
    fig = grid_figure([row_data(case_id, entry, organ, models) for case_id, entry in chosen], models, colors)
    return Figure(save_figure(fig, out), title or f"Qualitative comparison — {organ}",
                  "Axial slice through the largest tumor cross-section, abdomen window W400/L40; red = "
                  "ground-truth tumor (dashed on predictions), yellow dotted = organ, coloured = predicted "
                  "tumor (regime colour). Cases chosen where the models disagree most.")


def describe_location(grid: GridData, organ: str, case_id: str, entry: dict) -> str:
    """Coarse position of the largest lesion within the organ (thirds along R-L, A-P, S-I)."""
    import nibabel as nib

    lesions = entry["case"].get("lesions") or []
    if not lesions:
        return "—"
    _, label_path = _case_paths(next(iter(entry["cells"].values())), case_id)
    if not label_path.is_file():
        return "centroid voxel " + str(max(lesions, key=lambda l: l["volume_mm3"])["centroid_vox"])
    img = nib.load(str(label_path))
    organ_vox = np.argwhere(np.asarray(img.dataobj) > 0)
    world = nib.affines.apply_affine(img.affine, organ_vox)
    centre = nib.affines.apply_affine(img.affine, max(lesions, key=lambda l: l["volume_mm3"])["centroid_vox"])
    rel = (centre - world.min(axis=0)) / np.maximum(np.ptp(world, axis=0), 1e-6)
    names = (("left", "central", "right"), ("posterior", "middle", "anterior"), ("inferior", "middle", "superior"))
    parts = [n[min(int(r * 3), 2)] for n, r in zip(names, np.clip(rel, 0, 0.999))]
    return f"{organ}: {parts[2]}, {parts[1]}, {parts[0]}"
