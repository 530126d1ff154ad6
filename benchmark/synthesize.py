"""File-level synthesis: a NIfTI CT + organ mask in, a CT with synthetic tumors out.

Used by ``tumorbench synthesize``. Any orientation and spacing: the arrays are brought to the
closest canonical (RAS) orientation for synthesis (so the axial axis is the last one, as in the
training pipeline) and back before writing. Voxel centres in params.json refer to that RAS
array; ``--replay`` re-applies them to the same inputs bit for bit on CPU (params.json records the
sha256 of the RAS CT and organ mask, and replay refuses other inputs).

``--count N`` draws N tumors independently on the input CT and keeps, per voxel, the largest
change any of them makes, so overlapping tumors are not darkened twice (the reference darkens the
union of its ellipsoids once).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmark.errors import InputError
from benchmark.io import atomic_dir, load_nifti, read_json, save_nifti_atomic, write_json_atomic

SIZE_CHOICES = ("tiny", "small", "medium", "large", "mix", "early", "random")
ORGANS = ("liver", "pancreas", "kidney")


def size_probs_for(size: str) -> dict[str, float] | None:
    """--size value -> generator size probabilities (None: the method's own default mix)."""
    if size not in SIZE_CHOICES:
        raise InputError(f"--size {size!r}: expected one of {', '.join(SIZE_CHOICES)}")
    return None if size == "random" else {size: 1.0}


def _orientations(affine: np.ndarray):
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    current = io_orientation(affine)
    ras = axcodes2ornt("RAS")
    return ornt_transform(current, ras), ornt_transform(ras, current)


def _organ_mask(data: np.ndarray, label: int | None, path: Path) -> np.ndarray:
    """Binary organ mask from a binary or multi-label mask (``label`` selects one value)."""
    values = np.unique(data)
    if label is not None:
        if label not in values:
            raise InputError(f"{path}: organ label {label} is absent (labels present: {values.tolist()})")
        return data == label
    nonzero = values[values != 0]
    if len(nonzero) == 0:
        raise InputError(f"{path}: organ mask is empty (all zero)")
    if len(nonzero) > 1:
        raise InputError(f"{path}: multi-label mask (labels {values.tolist()}); pass --label N for the organ")
    return data != 0


def load_pair(ct_path: Path, mask_path: Path, label: int | None):
    """Load, validate and reorient to RAS. Returns (ct_img, ct_ras float32, organ_ras bool,
    spacing_ras (3,), back_ornt, others_ras: bool mask of the other labels of a multi-label mask,
    or None)."""
    ct_img = load_nifti(ct_path, "CT")
    mask_img = load_nifti(mask_path, "organ mask")
    ct = np.asarray(ct_img.dataobj, dtype=np.float32)
    mask = np.asarray(mask_img.dataobj)
    if ct.ndim == 4 and ct.shape[3] == 1:
        ct = ct[..., 0]
    if mask.ndim == 4 and mask.shape[3] == 1:
        mask = mask[..., 0]
    if ct.ndim != 3:
        raise InputError(f"{ct_path}: expected a 3D CT, got shape {ct.shape}")
    if mask.shape != ct.shape:
        raise InputError(f"{mask_path}: shape {mask.shape} does not match the CT shape {ct.shape}")
    if not np.allclose(ct_img.affine, mask_img.affine, atol=1e-3):
        raise InputError(f"{mask_path}: affine differs from the CT's (masks must be on the CT grid)\n"
                         f"CT:\n{np.round(ct_img.affine, 4)}\nmask:\n{np.round(mask_img.affine, 4)}")
    bad = int(np.count_nonzero(~np.isfinite(ct)))
    if bad:
        raise InputError(f"{ct_path}: {bad} non-finite HU values (NaN/inf); expected finite HU")
    labels = np.rint(mask).astype(np.int64) if mask.dtype.kind == "f" else mask
    organ = _organ_mask(labels, label, mask_path)
    others = (labels != 0) & ~organ
    from nibabel.orientations import apply_orientation

    to_ras, back = _orientations(ct_img.affine)
    zooms = np.asarray(ct_img.header.get_zooms()[:3], float)
    spacing = np.empty(3)
    spacing[to_ras[:, 0].astype(int)] = zooms
    ct_ras = np.ascontiguousarray(apply_orientation(ct, to_ras), dtype=np.float32)
    organ_ras = np.ascontiguousarray(apply_orientation(organ, to_ras))
    others_ras = np.ascontiguousarray(apply_orientation(others, to_ras)) if others.any() else None
    return ct_img, ct_ras, organ_ras, spacing, back, others_ras


def _write(out_dir: Path, ct_img, ct_ras, tumor_ras, back, params: Mapping[str, Any]) -> None:
    from nibabel.orientations import apply_orientation

    ct = apply_orientation(ct_ras, back)
    tumor = apply_orientation(tumor_ras, back).astype(np.uint8)
    dtype = ct_img.get_data_dtype()
    slope, inter = ct_img.header.get_slope_inter()
    plain = slope in (None, 1.0) and inter in (None, 0.0)
    if np.issubdtype(dtype, np.integer) and plain:
        info = np.iinfo(dtype)
        ct = np.clip(np.rint(ct), info.min, info.max).astype(dtype)
    else:  # float input, or scaled integers: keep HU exactly as float32
        ct = ct.astype(np.float32)
    header = ct_img.header.copy()
    if not plain:
        header.set_slope_inter(1.0, 0.0)
    with atomic_dir(out_dir) as tmp:
        save_nifti_atomic(tmp / "ct.nii.gz", ct, ct_img.affine, header=header)
        save_nifti_atomic(tmp / "tumor.nii.gz", tumor, ct_img.affine)
        write_json_atomic(tmp / "params.json", params)


def content_sha256(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' shapes, dtypes and bytes (C order)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _combine(ct: np.ndarray, out: np.ndarray, tumor: np.ndarray, drawn) -> None:
    """Fold one tumor (a ``LocalTumor`` drawn on ``ct``) into ``out`` and ``tumor`` in place, on
    its box only: each voxel keeps the larger change from ``ct`` (no double darkening where
    tumors overlap; outside the box the tumor changes nothing)."""
    for box, new, mask in drawn.pieces:  # the pieces hold every change: the rest is skipped
        base, current = ct[box], out[box]
        change, kept = np.subtract(new, base), np.subtract(current, base)  # no other temporaries
        np.abs(change, out=change)
        np.abs(kept, out=kept)
        np.copyto(current, new, where=change > kept)
        tumor[box] |= mask


def other_organs_kwargs(method, others: np.ndarray | None, batch: bool) -> dict[str, Any]:
    """``other_organs=`` for a generator method that takes it (Hu, DiffTumor: an exophytic tumor
    never replaces another labelled structure), else nothing."""
    import inspect

    if others is None or "other_organs" not in inspect.signature(method).parameters:
        return {}
    return {"other_organs": others[None] if batch else others}


def _generate(generator, ct, organ, spacing, count: int, seed: int, progress: bool, others=None):
    """``count`` tumors drawn on ``ct``, each on its box (``local_tumors``): the work per tumor
    follows the tumor's box, not the CT."""
    from tqdm import tqdm

    from synthesis.protocol import local_tumors

    rng = np.random.default_rng(seed)
    out, tumor = ct.copy(), np.zeros(organ.shape, bool)
    organ = organ.copy()
    organ.flags.writeable = False  # read-only: a generator may scan it once for all N tumors
    tumors = []
    method = getattr(generator, "local", None) or generator.__call__
    extra = other_organs_kwargs(method, others, batch=True)
    for _ in tqdm(range(count), desc="tumors", disable=not progress or count == 1):
        drawn = local_tumors(generator, ct[None], organ[None], spacing, rng, **extra)[0]
        _combine(ct, out, tumor, drawn)
        tumors.append(drawn.params)
    return out, tumor, tumors


def _replay(generator, ct, organ, tumors: Sequence[Mapping[str, Any]], replay_path: Path, others=None):
    from synthesis.protocol import replay_tumor

    if not hasattr(generator, "replay"):
        raise InputError(f"{replay_path}: method {generator.name!r} cannot replay tumors from params")
    out, tumor = ct.copy(), np.zeros(organ.shape, bool)
    extra = other_organs_kwargs(getattr(generator, "replay_local", None) or generator.replay, others, batch=False)
    for params in tumors:
        _combine(ct, out, tumor, replay_tumor(generator, ct, organ, params, **extra))
    return out, tumor


def synthesize_files(ct_path: str | os.PathLike, organ_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                     organ: str | None = None, method: str = "hu", label: int | None = None,
                     checkpoint: str | None = None, size: str = "random", count: int = 1, seed: int = 0,
                     device: str = "cpu", replay: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Add ``count`` synthetic tumors to a CT and write ``out_dir/{ct,tumor}.nii.gz, params.json``.

    With ``replay`` (a params.json written by an earlier run) method, organ, label, size and
    the tumors come from that file and the output is identical to the earlier one.

    Raises:
        InputError: missing/corrupt file, shape/affine mismatch, missing or empty organ label,
            organ too small for the size, non-finite HU, bad options.
    """
    from synthesis.errors import SynthesisInputError
    from synthesis.registry import make_generator, registered_names

    ct_path, organ_path, out_dir = Path(ct_path), Path(organ_path), Path(out_dir)
    recorded = read_json(replay, "replay params") if replay is not None else None
    if recorded is not None:
        method, organ, label, size = _recorded_options(recorded, replay)
        checkpoint = checkpoint or recorded.get("checkpoint")
    methods = registered_names()
    if method not in methods or organ not in ORGANS:
        raise InputError(f"--method {method!r} / --organ {organ!r}: expected a registered generator "
                         f"({', '.join(methods)}) / one of {', '.join(ORGANS)}")
    if count < 1:
        raise InputError(f"--count {count}: expected at least 1")
    ct_img, ct, organ_mask, spacing, back, others = load_pair(ct_path, organ_path, label)
    generator = make_generator(method, organ, size_probs=size_probs_for(size), checkpoint=checkpoint, device=device)
    try:
        if recorded is not None:
            _check_replay(recorded, ct, organ_mask, replay)
            ct_out, tumor = _replay(generator, ct, organ_mask, recorded["tumors"], Path(replay), others)
            tumors, seed, count = recorded["tumors"], recorded["seed"], recorded["count"]
        else:
            ct_out, tumor, tumors = _generate(generator, ct, organ_mask, spacing, count, seed, progress, others)
    except SynthesisInputError as exc:  # e.g. organ too small for the size: name the mask file
        raise InputError(f"{organ_path}: {exc}") from exc
    params = _params_doc(method, organ, size, count, seed, label, ct_path, organ_path, ct.shape, spacing, tumors)
    params.update(inputs_sha256=content_sha256(ct, organ_mask), checkpoint=None if checkpoint is None else
                  str(Path(checkpoint).resolve()))
    _write(out_dir, ct_img, ct_out, tumor, back, params)
    return out_dir


def _params_doc(method, organ, size, count, seed, label, ct_path, organ_path, shape, spacing, tumors) -> dict:
    return {"method": method, "organ": organ, "size": size, "count": count, "seed": seed, "label": label,
            "ct": str(ct_path), "organ_mask": str(organ_path), "shape_ras": list(shape),
            "spacing_ras_mm": [float(s) for s in spacing],
            "note": "voxel centres index the CT reoriented to RAS (nibabel closest canonical)",
            "tumors": tumors}


def _recorded_options(recorded: Any, replay) -> tuple[str, str, int | None, str]:
    try:
        return recorded["method"], recorded["organ"], recorded.get("label"), recorded["size"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{replay}: not a params.json written by `tumorbench synthesize` (missing {exc})") from exc


def _check_replay(recorded: Mapping[str, Any], ct: np.ndarray, organ: np.ndarray, replay) -> None:
    if list(recorded.get("shape_ras", [])) != list(ct.shape):
        raise InputError(f"{replay}: recorded for a CT of (RAS) shape {recorded.get('shape_ras')}, "
                         f"this CT is {list(ct.shape)}")
    if recorded.get("inputs_sha256") != content_sha256(ct, organ):
        raise InputError(f"{replay}: recorded for other inputs (inputs_sha256 {recorded.get('inputs_sha256')}); "
                         "this CT and organ mask differ in content: replay needs the very same files")
    if not isinstance(recorded.get("tumors"), list) or not recorded["tumors"]:
        raise InputError(f"{replay}: no 'tumors' list to replay")
