"""Radiomics features of tumor ROIs with a fixed, documented pyradiomics configuration.

The feature set follows the DiffTumor paper (91 features = shape 16 + GLCM 24 + GLRLM 16 +
GLSZM 16 + NGTDM 5 + GLDM 14), first-order statistics optional. pyradiomics 3.x splits the old
``Volume`` into ``MeshVolume`` and ``VoxelVolume`` (17 shape features with the deprecated ones);
we keep ``MeshVolume`` and the three deprecated compactness features, which gives the paper's 16.

Arrays here are (X, Y, Z) in nibabel order with spacing (sx, sy, sz) in mm.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

FEATURE_CLASSES = ("shape", "glcm", "glrlm", "glszm", "ngtdm", "gldm")
SHAPE_FEATURES = (
    "MeshVolume", "SurfaceArea", "SurfaceVolumeRatio", "Sphericity", "Compactness1", "Compactness2",
    "SphericalDisproportion", "Maximum3DDiameter", "Maximum2DDiameterSlice", "Maximum2DDiameterColumn",
    "Maximum2DDiameterRow", "MajorAxisLength", "MinorAxisLength", "LeastAxisLength", "Elongation",
    "Flatness",
)
# Expected number of features per class (pyradiomics 3.x, deprecated features off except shape).
EXPECTED_COUNTS = {"shape": 16, "glcm": 24, "glrlm": 16, "glszm": 16, "ngtdm": 5, "gldm": 14,
                   "firstorder": 18}


@dataclass(frozen=True)
class ExtractorConfig:
    """Fixed radiomics settings; saved next to every result (extractor_config.json).

    Attributes:
        bin_width: grey-level bin width in HU (25 HU: pyradiomics default, common for CT).
        resample_mm: isotropic spacing the ROI is resampled to before extraction (None = keep the
            dataset spacing). A fixed spacing makes texture features comparable across datasets.
        interpolator: SimpleITK interpolator for the CT (the mask always uses nearest neighbour).
        hu_range: CT values are clipped to this window (HU) before binning, so air/bone outliers
            in the ROI margin cannot create hundreds of empty bins.
        firstorder: also extract the 18 first-order statistics.
        min_voxels: ROIs with fewer tumor voxels are not extracted (status ``too_small``).
    """

    bin_width: float = 25.0
    resample_mm: float | None = 1.0
    interpolator: str = "sitkBSpline"
    hu_range: tuple[float, float] = (-200.0, 300.0)
    firstorder: bool = False
    min_voxels: int = 8
    classes: tuple[str, ...] = field(default=FEATURE_CLASSES)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["feature_classes"] = {c: list(SHAPE_FEATURES) if c == "shape" else "all non-deprecated"
                                  for c in self.enabled_classes()}
        out["expected_counts"] = {c: EXPECTED_COUNTS[c] for c in self.enabled_classes()}
        out["pyradiomics_version"] = _pyradiomics_version()
        return out

    def enabled_classes(self) -> tuple[str, ...]:
        return (("firstorder",) if self.firstorder else ()) + tuple(self.classes)


def _pyradiomics_version() -> str:
    try:
        import radiomics

        return str(radiomics.__version__)
    except Exception:  # pragma: no cover - pyradiomics missing
        return "unavailable"


def silence_pyradiomics() -> None:
    """pyradiomics logs every GLCM/shape warning at INFO/WARNING; keep only real failures quiet too."""
    import radiomics

    radiomics.setVerbosity(logging.CRITICAL)
    logging.getLogger("radiomics").setLevel(logging.CRITICAL)


def build_extractor(config: ExtractorConfig):
    """A pyradiomics RadiomicsFeatureExtractor with exactly the documented feature set."""
    from radiomics import featureextractor

    silence_pyradiomics()
    settings = {"binWidth": config.bin_width, "interpolator": config.interpolator, "label": 1,
                "correctMask": True, "additionalInfo": False, "force2D": False}
    if config.resample_mm:
        settings["resampledPixelSpacing"] = [config.resample_mm] * 3
    extractor = featureextractor.RadiomicsFeatureExtractor(**settings)
    extractor.disableAllFeatures()
    enabled = {c: [] for c in config.enabled_classes()}  # [] = all non-deprecated features
    if "shape" in enabled:
        enabled["shape"] = list(SHAPE_FEATURES)
    extractor.enableFeaturesByName(**enabled)
    return extractor


def feature_columns(columns: Iterable[str]) -> list[str]:
    """Radiomics feature columns (``original_<class>_<Feature>``) of a table, in order."""
    return [c for c in columns if str(c).startswith("original_")]


def _to_sitk(array: np.ndarray, spacing: Sequence[float], dtype):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0)).astype(dtype)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def extract_roi_features(ct_hu: np.ndarray, mask: np.ndarray, spacing: Sequence[float],
                         config: ExtractorConfig, extractor=None) -> dict[str, Any]:
    """Radiomics features of one tumor ROI.

    Args:
        ct_hu: (X, Y, Z) CT crop in HU.
        mask: (X, Y, Z) bool/0-1 tumor mask of the same grid.
        spacing: voxel spacing in mm.
        config: extractor settings.
        extractor: a prebuilt extractor (reuse it across calls; built from config if None).

    Returns:
        ``{"status": "ok"|"too_small"|"failed"|"nan:<classes>", "n_voxels": int,
        "original_<class>_<Feature>": float, ...}``; failed extractions have NaN features.
    """
    mask = np.asarray(mask) > 0
    n_voxels = int(mask.sum())
    row: dict[str, Any] = {"status": "ok", "n_voxels": n_voxels}
    if n_voxels < config.min_voxels:
        row["status"] = "too_small"
        return row
    extractor = extractor or build_extractor(config)
    ct = np.clip(np.asarray(ct_hu, dtype=np.float32), *config.hu_range)
    try:
        result = extractor.execute(_to_sitk(ct, spacing, np.float32), _to_sitk(mask, spacing, np.uint8))
    except (ValueError, RuntimeError, IndexError) as exc:  # mask too thin/small after resampling
        row["status"] = f"failed: {str(exc).splitlines()[0][:120]}"
        return row
    bad: list[str] = []
    for key, value in result.items():
        if not key.startswith("original_"):
            continue
        row[key] = value = _as_float(value)
        klass = key.split("_")[1]
        if not np.isfinite(value) and klass not in bad:
            bad.append(klass)
    if bad:
        row["status"] = "nan:" + ",".join(bad)
    return row


def extract_table(records: Any, config: ExtractorConfig, *, jobs: int = 1,
                  progress: bool = True) -> Any:
    """Features of every tumor in ``records`` (DataFrame with ``tumor_id, ct_path, mask_path``).

    Runs ``jobs`` worker processes (joblib, 1 = in process) with a tqdm bar. Returns a DataFrame
    indexed like ``records`` with the record columns, ``status``, ``n_voxels`` and the features;
    feature columns are the union over tumors (missing = NaN).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    paths = [(str(r.ct_path), str(r.mask_path)) for r in records.itertuples()]
    bar = tqdm(total=len(paths), desc="radiomics", unit="tumor", disable=not progress)
    if jobs <= 1:
        extractor = build_extractor(config)
        rows = []
        for ct_path, mask_path in paths:
            rows.append(_extract_with(extractor, ct_path, mask_path, config))
            bar.update()
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=jobs, return_as="generator")
        rows = []
        for row in parallel(delayed(_extract_with)(None, c, m, config) for c, m in paths):
            rows.append(row)
            bar.update()
    bar.close()
    features = pd.DataFrame(rows, index=records.index)
    columns = ["status", "n_voxels"] + _ordered_features(features.columns, config)
    return pd.concat([records, features.reindex(columns=columns)], axis=1)


def _as_float(value: Any) -> float:
    """pyradiomics returns 0-d arrays; axis lengths of flat ROIs come back complex -> NaN."""
    arr = np.asarray(value).ravel()
    if arr.size == 0:
        return float("nan")
    if np.iscomplexobj(arr):
        return float(arr[0].real) if abs(arr[0].imag) < 1e-12 else float("nan")
    return float(arr[0])


def _extract_with(extractor, ct_path: str, mask_path: str, config: ExtractorConfig) -> dict[str, Any]:
    import nibabel as nib

    ct_img = nib.load(ct_path)
    spacing = tuple(float(s) for s in ct_img.header.get_zooms()[:3])
    mask = np.asarray(nib.load(mask_path).dataobj)
    return extract_roi_features(np.asarray(ct_img.dataobj), mask, spacing, config, extractor)


def _ordered_features(columns: Iterable[str], config: ExtractorConfig) -> list[str]:
    """Feature columns grouped by class in the configured order, sorted within a class."""
    names = feature_columns(columns)
    ordered: list[str] = []
    for klass in config.enabled_classes():
        ordered += sorted(n for n in names if n.split("_")[1] == klass)
    return ordered


def counts_per_class(columns: Iterable[str]) -> dict[str, int]:
    """Number of feature columns per radiomics class, e.g. ``{"shape": 16, "glcm": 24, ...}``."""
    out: dict[str, int] = {}
    for name in feature_columns(columns):
        klass = name.split("_")[1]
        out[klass] = out.get(klass, 0) + 1
    return out

