"""Gallery page (DiffTumor Fig 9 style): real and synthetic tumors side by side, small to large.

One section per organ, one block per generator with a row of real tumors above a row of that
generator's tumors, each ordered by equivalent radius. Thumbnails are the axial slice with the
largest tumor area, abdomen window, embedded as base64 PNG (one self-contained HTML file).
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from tumorbench_common.io import write_text_atomic

WINDOW = (400.0, 40.0)  # width, level (HU)


def thumbnail_png(ct_hu: np.ndarray, mask: np.ndarray, window: tuple[float, float] = WINDOW,
                  outline: bool = False, scale: int = 3) -> bytes:
    """PNG bytes of the axial slice (X, Y, Z arrays) where the tumor is largest.

    Args:
        ct_hu, mask: (X, Y, Z) crop and tumor mask.
        outline: draw the tumor boundary in red.
        scale: nearest-neighbour upsampling factor (tiny crops stay visible).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from scipy import ndimage

    mask = np.asarray(mask) > 0
    z = int(np.argmax(mask.sum(axis=(0, 1)))) if mask.any() else ct_hu.shape[2] // 2
    sl = np.asarray(ct_hu, dtype=float)[:, :, z].T[::-1, ::-1]  # radiological display
    lo = window[1] - window[0] / 2
    gray = np.clip((sl - lo) / window[0], 0, 1)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    if outline:
        m = mask[:, :, z].T[::-1, ::-1]
        edge = m & ~ndimage.binary_erosion(m)
        rgb[edge] = (1.0, 0.1, 0.1)
    rgb = np.kron(rgb, np.ones((scale, scale, 1)))
    buffer = io.BytesIO()
    plt.imsave(buffer, rgb, format="png")
    return buffer.getvalue()


def square_around_tumor(ct_hu: np.ndarray, mask: np.ndarray, min_half: int = 12,
                        radii: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """In-plane square window centred on the tumor, half-size ``max(min_half, radii * extent)``
    voxels, all slices; the tumor with some surrounding organ, as in the paper's gallery."""
    idx = np.argwhere(mask)
    centre = (idx.min(0) + idx.max(0)) // 2
    half = int(max(min_half, np.ceil(radii * (idx.max(0) - idx.min(0) + 1)[:2].max() / 2)))
    box = tuple(slice(max(0, int(c) - half), int(c) + half + 1) for c in centre[:2])
    return ct_hu[box], mask[box]


def _img_tag(row: Any, outline: bool) -> str:
    import nibabel as nib

    prefix = "context_" if getattr(row, "context_ct_path", None) else ""
    ct = np.asarray(nib.load(str(getattr(row, f"{prefix}ct_path"))).dataobj)
    mask = np.asarray(nib.load(str(getattr(row, f"{prefix}mask_path"))).dataobj) > 0
    if prefix:
        ct, mask = square_around_tumor(ct, mask)
    data = base64.b64encode(thumbnail_png(ct, mask, outline=outline)).decode("ascii")
    caption = f"r={row.radius_mm:.1f} mm"
    return (f'<figure><img src="data:image/png;base64,{data}" title="{html.escape(str(row.tumor_id))}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _row(label: str, frame: Any, per_row: int, outline: bool) -> str:
    frame = frame.sort_values("radius_mm").head(per_row) if len(frame) <= per_row else \
        frame.sort_values("radius_mm").iloc[np.linspace(0, len(frame) - 1, per_row).round().astype(int)]
    cells = "".join(_img_tag(r, outline) for r in frame.itertuples()) or "<em>none</em>"
    return f'<div class="row"><div class="label">{html.escape(label)}</div>{cells}</div>'


def write_gallery(tumors: Any, path: str | Path, *, per_row: int = 8, outline: bool = False,
                  title: str = "Real vs synthetic tumors") -> Path:
    """Write the gallery HTML.

    Args:
        tumors: DataFrame with ``tumor_id, source ('real' or generator), organ, radius_mm,
            ct_path, mask_path`` and optionally ``context_ct_path, context_mask_path`` (absolute
            paths; the tumors.csv of a realism collection). Context crops are preferred.
        path: output .html file.
        per_row: tumors per row; with more, an evenly spaced selection over radius is shown.
    """
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for organ in sorted(set(tumors["organ"])):
        sub = tumors[tumors["organ"] == organ]
        parts.append(f"<h2>{html.escape(organ)}</h2>")
        real = sub[sub["source"] == "real"]
        for source in sorted(set(sub["source"]) - {"real"}) or ["(no generator)"]:
            parts.append(f"<h3>real vs {html.escape(source)}</h3>")
            parts.append(_row("real", real, per_row, outline))
            parts.append(_row(source, sub[sub["source"] == source], per_row, outline))
    style = ("body{font-family:system-ui,sans-serif;background:#111;color:#ddd;margin:16px}"
             ".row{display:flex;gap:6px;align-items:center;margin:4px 0;overflow-x:auto}"
             ".label{flex:0 0 90px;font-weight:bold}figure{flex:0 0 auto;margin:0;text-align:center}"
             "figcaption{font-size:11px;color:#aaa}img{image-rendering:pixelated;width:120px;height:120px}")
    text = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    write_text_atomic(path, text)
    return Path(path)


def read_case(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(Z, rows, cols) int16 stack and payload of a blinded case file ``reader/cases/<id>.js``."""
    import json

    text = Path(path).read_text()
    payload = json.loads(text[text.index(", ") + 2: text.rindex(")")])
    stack = np.frombuffer(base64.b64decode(payload["data"]), "<i2").reshape(payload["shape"])
    return stack, payload


def answers_figure(key: Any, right: dict[str, tuple[int, int]], cases_dir: Path, path: Path,
                   per_row: int = 6) -> Path | None:
    """Fig 9 style panel: one row per source (real, then each generator), cases small to large
    (evenly spaced over radius), each the slice the readers saw first, captioned with its radius
    and how many readers answered it right (``right``: case_id -> (right, answered))."""
    from reports.realism_plots import _pyplot, _save

    if "source" not in key or "radius_mm" not in key:
        return None
    sources = ["real", *sorted(set(key["source"].astype(str)) - {"real"})]
    rows = [key[key["source"] == s].sort_values("radius_mm") for s in sources]
    rows = [r.iloc[np.unique(np.linspace(0, len(r) - 1, min(per_row, len(r))).round().astype(int))] for r in rows if len(r)]
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.9 * per_row, 2.2 * len(rows)), squeeze=False)
    lo = WINDOW[1] - WINDOW[0] / 2
    for ax_row, frame in zip(axes, rows):
        ax_row[0].set_ylabel(str(frame["source"].iloc[0]), fontsize=10)
        for ax, case in zip(ax_row, list(frame.itertuples()) + [None] * per_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if case is None:
                ax.axis("off")
                continue
            stack, payload = read_case(cases_dir / f"{case.case_id}.js")
            ax.imshow(stack[payload["start"]], cmap="gray", vmin=lo, vmax=lo + WINDOW[0],
                      aspect=payload["pixel_mm"][0] / payload["pixel_mm"][1])
            ok, n = right.get(case.case_id, (0, 0))
            ax.set_title(f"{case.case_id}\nr={case.radius_mm:.1f} mm, {ok}/{n} right", fontsize=7)
    return _save(fig, path)
