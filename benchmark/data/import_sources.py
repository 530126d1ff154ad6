"""Finding the cases of public datasets in their original folder layouts.

- ``msd``: Medical Segmentation Decathlon Task03_Liver / Task07_Pancreas: dataset.json +
  imagesTr/<name>.nii.gz + labelsTr/<name>.nii.gz (0 background, 1 organ, 2 cancer).
- ``lits``: LiTS training batches: volume-N.nii + segmentation-N.nii (1 liver, 2 tumor).
- ``kits``: KiTS19/21/23: case_XXXXX/imaging.nii.gz + segmentation.nii.gz (KiTS21 also
  aggregated_MAJ_seg.nii.gz); 1 kidney, 2 tumor, 3 cyst (KiTS21/23) -> cyst counts as kidney.
- ``atlas``: AbdomenAtlas-style healthy CTs: BDMAP_*/ct.nii.gz + segmentations/<organ>.nii.gz
  (kidney = kidney_left + kidney_right); cases with a non-empty lesion mask are skipped, and a
  case without any lesion mask file is an error unless ``assume_healthy``.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import InputError

FORMAT_ORGANS = {"msd": ("liver", "pancreas"), "lits": ("liver",), "kits": ("kidney",),
                 "atlas": ("liver", "pancreas", "kidney")}
LABEL_MAPS = {"msd": {0: 0, 1: 1, 2: 2}, "lits": {0: 0, 1: 1, 2: 2}, "kits": {0: 0, 1: 1, 2: 2, 3: 1}}
ATLAS_ORGAN_FILES = {"liver": ("liver",), "pancreas": ("pancreas",), "kidney": ("kidney_left", "kidney_right")}
ATLAS_LESION_FILES = {"liver": ("liver_tumor", "liver_lesion"),
                      "pancreas": ("pancreas_tumor", "pancreatic_lesion", "pancreas_lesion"),
                      "kidney": ("kidney_tumor", "kidney_lesion")}


@dataclass(frozen=True)
class SourceCase:
    """One case to import: a CT plus one multi-class label file or several binary organ masks."""

    case_id: str
    image: Path
    labels: tuple[Path, ...]
    label_map: dict[int, int] | None  # multi-class mapping; None = binary organ masks (-> 1)
    role: str                         # labeled | healthy
    source: str
    lesion_masks: tuple[Path, ...] = field(default=())  # atlas: must be empty for a healthy case


def find_cases(fmt: str, src: Path, organ: str, assume_healthy: bool = False) -> list[SourceCase]:
    """Cases of ``src`` in format ``fmt``, sorted by case id; InputError if none / wrong organ."""
    if fmt not in FORMAT_ORGANS:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMAT_ORGANS)}")
    if organ not in FORMAT_ORGANS[fmt]:
        raise InputError(f"--organ {organ}: format {fmt} holds {' or '.join(FORMAT_ORGANS[fmt])} data")
    if not src.is_dir():
        raise InputError(f"{src}: source folder not found")
    cases = {"msd": _msd, "lits": _lits, "kits": _kits, "atlas": _atlas}[fmt](src, organ)
    unverified = [c for c in cases if c.role == "healthy" and not c.lesion_masks]
    if unverified and not assume_healthy:
        names = ", ".join(f"{n}.nii.gz" for n in ATLAS_LESION_FILES[organ])
        raise InputError(f"{unverified[0].image.parent / 'segmentations'}: no lesion mask ({names}) for "
                         f"{len(unverified)} CT(s) (first {unverified[0].case_id}): nothing shows they are healthy; "
                         "add the lesion masks or pass --assume-healthy")
    if not cases:
        raise InputError(f"{src}: no {fmt} cases found (see `tumorbench data import --help` for the layout)")
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise InputError(f"{src}: duplicate case ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return sorted(cases, key=lambda c: c.case_id)


def _nifti_stem(path: Path) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", path.name)


def _msd(src: Path, organ: str) -> list[SourceCase]:
    meta_path = src / "dataset.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{meta_path}: not valid JSON ({exc})") from exc
        label_one = str(meta.get("labels", {}).get("1", organ)).lower()
        if label_one != organ:
            raise InputError(f"{meta_path}: label 1 is {label_one!r}, expected {organ!r} for --organ {organ}")
        pairs = [(src / e["image"], src / e["label"]) for e in meta.get("training", [])]
    else:  # no dataset.json: pair imagesTr/X.nii.gz with labelsTr/X.nii.gz
        pairs = [(p, src / "labelsTr" / p.name) for p in sorted((src / "imagesTr").glob("*.nii*"))]
    cases = []
    for image, label in pairs:
        if image.name.startswith("._"):  # macOS resource forks shipped inside the MSD tars
            continue
        if not label.is_file():
            raise InputError(f"{label}: label file missing for {image}")
        cases.append(SourceCase(_nifti_stem(image), image.resolve(), (label.resolve(),), LABEL_MAPS["msd"],
                                "labeled", f"msd:{src.name}"))
    return cases


def _lits(src: Path, organ: str) -> list[SourceCase]:
    cases = []
    for image in sorted(src.rglob("volume-*.nii*")):
        number = re.fullmatch(r"volume-(\d+)\.nii(\.gz)?", image.name)
        if not number:
            continue
        candidates = sorted(src.rglob(f"segmentation-{number.group(1)}.nii*"))
        if not candidates:
            raise InputError(f"{image}: no matching segmentation-{number.group(1)}.nii(.gz) under {src}")
        cases.append(SourceCase(f"lits_{int(number.group(1)):03d}", image.resolve(), (candidates[0].resolve(),),
                                LABEL_MAPS["lits"], "labeled", "lits"))
    return cases


def _kits(src: Path, organ: str) -> list[SourceCase]:
    cases = []
    for image in sorted(src.rglob("imaging.nii.gz")):
        folder = image.parent
        if not re.fullmatch(r"case_\d+", folder.name):
            continue
        names = ("segmentation.nii.gz", "aggregated_MAJ_seg.nii.gz")  # KiTS19/23, KiTS21
        label = next((folder / n for n in names if (folder / n).is_file()), None)
        if label is None:  # KiTS19 ships its 90 test cases (case_00210+) without labels
            print(f"tumorbench: note: skipping {folder}: no segmentation.nii.gz (KiTS19/23) or "
                  "aggregated_MAJ_seg.nii.gz (KiTS21), e.g. a test case", file=sys.stderr)
            continue
        cases.append(SourceCase(folder.name, image.resolve(), (label.resolve(),), LABEL_MAPS["kits"],
                                "labeled", "kits"))
    return cases


def _atlas(src: Path, organ: str) -> list[SourceCase]:
    cases = []
    for image in sorted(src.rglob("ct.nii.gz")):
        seg_dir = image.parent / "segmentations"
        if not seg_dir.is_dir():
            continue
        masks = tuple(seg_dir / f"{n}.nii.gz" for n in ATLAS_ORGAN_FILES[organ])
        missing = [m for m in masks if not m.is_file()]
        if missing:
            raise InputError(f"{missing[0]}: organ mask missing (expected {', '.join(m.name for m in masks)})")
        lesions = tuple(seg_dir / f"{n}.nii.gz" for n in ATLAS_LESION_FILES[organ] if (seg_dir / f"{n}.nii.gz").is_file())
        cases.append(SourceCase(image.parent.name, image.resolve(), tuple(m.resolve() for m in masks), None,
                                "healthy", "atlas", lesions))
    return cases


def kits_demographics(src: Path) -> dict[str, dict]:
    """Age/sex from the KiTS clinical json (kits.json / kits23.json) when it ships with the data."""
    out: dict[str, dict] = {}
    for path in sorted(src.rglob("kits*.json")):
        try:
            entries = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and "case_id" in entry:
                sex = {"male": "M", "female": "F"}.get(str(entry.get("gender", "")).lower())
                out[str(entry["case_id"])] = {"age": entry.get("age_at_nephrectomy"), "sex": sex}
    return out
