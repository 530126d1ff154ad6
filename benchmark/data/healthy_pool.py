"""A verified healthy pool: no "healthy" CT may be the same scan as a labeled (tumor) CT.

AbdomenAtlas holds CTs of LiTS, KiTS and MSD: imported as healthy, a test CT's twin would enter
training with its tumor painted as organ. Every imported CT gets a content fingerprint, the
sha256 of its RAS-canonical voxel grid rounded to integer HU (shape included), so the same scan
matches whatever its file name, orientation, dtype, scale/intercept or compression. Fingerprints
are kept per dataset in ``fingerprints.json`` (case id -> sha256, role); an import compares its
new cases with its own dataset, every dataset folder beside it and any ``--against`` folder, and
refuses a healthy CT that matches a labeled one (or the other way round), naming both.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from benchmark.errors import InputError
from benchmark.io import write_json_atomic

FINGERPRINTS = "fingerprints.json"


def content_fingerprint(ras_hu: np.ndarray) -> str:
    """sha256 of a RAS-canonical CT's shape and its voxels rounded to integer HU."""
    digest = hashlib.sha256(np.asarray(ras_hu.shape, np.int64).tobytes())
    values = np.rint(np.asarray(ras_hu, dtype=np.float64)).astype(np.int32)
    digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def read_fingerprints(dataset_dir: Path) -> dict[str, dict]:
    """case id -> {"sha256", "role"} of a dataset ({} when it has none)."""
    path = Path(dataset_dir) / FINGERPRINTS
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc


def write_fingerprints(dataset_dir: Path, rows: Iterable[dict], keep: dict[str, dict] | None = None) -> None:
    """``fingerprints.json`` of ``keep`` plus the rows' ``fingerprint`` entries."""
    table = dict(keep or {})
    table.update({row["case_id"]: {"sha256": row["fingerprint"], "role": row["role"]}
                  for row in rows if row.get("fingerprint")})
    write_json_atomic(Path(dataset_dir) / FINGERPRINTS, dict(sorted(table.items())))


def known_scans(out: Path, against: Sequence[Path] = ()) -> list[tuple[str, str, str, str]]:
    """(sha256, role, case id, dataset folder) of every fingerprinted CT in ``out``, the dataset
    folders beside it and ``against``."""
    out = Path(out).resolve()
    folders = {out, *(Path(a).resolve() for a in against)}
    if out.parent.is_dir():
        folders |= {p.resolve() for p in out.parent.iterdir() if (p / FINGERPRINTS).is_file()}
    for folder in against:
        if not (Path(folder) / FINGERPRINTS).is_file():
            raise InputError(f"--against {folder}: no {FINGERPRINTS} (import that dataset with this version first)")
    return [(entry["sha256"], entry["role"], case_id, str(folder))
            for folder in sorted(folders) for case_id, entry in read_fingerprints(folder).items()]


def check_healthy_pool(rows: Sequence[dict], known: Sequence[tuple[str, str, str, str]], where: Path) -> None:
    """InputError naming every new healthy CT that is a labeled CT (known or new), and every new
    labeled CT that is a known healthy one."""
    pool = list(known) + [(r["fingerprint"], r["role"], r["case_id"], f"{where} (this import)") for r in rows]
    by_sha: dict[str, list[tuple[str, str, str]]] = {}
    for sha, role, case_id, folder in pool:
        by_sha.setdefault(sha, []).append((role, case_id, folder))
    clashes = []
    for row in rows:
        twins = [t for t in by_sha.get(row["fingerprint"], []) if t[0] != row["role"]]
        clashes += [f"{row['role']} CT {row['case_id']} is the same scan as {role} CT {case_id} of {folder}"
                    for role, case_id, folder in twins]
    if clashes:
        raise InputError(f"{where}: healthy pool not clean ({len(clashes)}): " + "; ".join(sorted(set(clashes)))
                         + ". Drop the healthy twin (a tumor CT must never train as healthy)")
