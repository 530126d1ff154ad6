"""What a cell's tumor generator was trained on, read from its checkpoint folder's JSON records.

`benchmark.generators` records in every model JSON the dataset (name, fingerprint), the fold and
the exact training case ids. A model JSON without case ids came from elsewhere (published or
shipped weights): it is reported as ``published`` with the weights' sha256 and whatever its JSON
says it was trained on (``trained_on``). Before any cell trains, a generator whose recorded
training cases include a test case of the cell it serves (or whose recorded fold is another fold
of the same dataset) is refused: the scores would be on tumors the generator has seen.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmark.errors import InputError

DIFFUSION_STAGES = ("early", "nonearly")
NO_WEIGHTS = "nothing: a model-based generator without learned weights"


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the generator record ({exc})") from exc


def model_records(checkpoint: str | Path, source_organ: str) -> list[dict[str, Any]]:
    """One record per model file the DiffTumor generator of ``source_organ`` loads from ``checkpoint``:
    ``{"file", "sha256"}`` plus ``case_ids``/``fold``/``dataset``/``dataset_fingerprint`` when the
    JSON records them, else ``published: true`` and ``trained_on`` (the JSON's statement or None)."""
    folder = Path(checkpoint)
    stems = [f"diffusion_{source_organ}_{stage}" for stage in DIFFUSION_STAGES
             if (folder / f"diffusion_{source_organ}_{stage}.pt").is_file()]
    diffusion = [_read(folder / f"{stem}.json") for stem in stems]
    autoencoder = folder / "autoencoder.pt"
    if not autoencoder.is_file():  # a diffusion JSON may name an autoencoder elsewhere
        named = next((m["autoencoder_path"] for m in diffusion if m.get("autoencoder_path")), None)
        autoencoder = Path(named) if named else autoencoder
    records = []
    for weights, meta in [(autoencoder, _read(autoencoder.with_suffix(".json"))),
                          *((folder / f"{s}.pt", m) for s, m in zip(stems, diffusion))]:
        record: dict[str, Any] = {"file": str(weights), "sha256": _sha256(weights), "dataset": meta.get("dataset"),
                                  "dataset_fingerprint": meta.get("dataset_fingerprint"), "fold": meta.get("fold")}
        if isinstance(meta.get("train_case_ids"), list):
            record["case_ids"] = [str(c) for c in meta["train_case_ids"]]
        else:
            record.update(published=True, trained_on=meta.get("trained_on"))
        records.append(record)
    return records


def generator_provenance(config: Mapping[str, Any], checkpoint: str | None, source_organ: str) -> dict | None:
    """The ``generator`` entry of cases_used.json: ``None`` for the real regime; for a generator
    with weights the union of recorded training case ids (``case_ids``, None when a model records
    none), ``published`` {file: sha256} of the models without recorded ids, and every model record."""
    if not config:
        return None
    out: dict[str, Any] = {"name": config["name"], "source_organ": source_organ}
    if not checkpoint or checkpoint == "auto":
        return {**out, "trained_on": NO_WEIGHTS} if not checkpoint else {**out, "checkpoint": "auto"}
    records = model_records(checkpoint, source_organ)
    published = {r["file"]: r["sha256"] for r in records if r.get("published")}
    ids = None if published else sorted({c for r in records for c in r["case_ids"]})
    return {**out, "checkpoint": str(checkpoint), "case_ids": ids, "published": published, "models": records}


def leaks(records: Sequence[dict], fold: int, test_ids: Mapping[str, set[str]]) -> list[str]:
    """Problems of a generator serving fold ``fold``: recorded training cases in the test fold of the
    same dataset (``test_ids``: dataset fingerprint and dataset name -> its fold-``fold`` test ids; the
    name too, since adding the inner split to splits.json changes the fingerprint), or weights
    recorded for another fold of that dataset."""
    problems = []
    for record in records:
        tests = test_ids.get(record.get("dataset_fingerprint") or "", test_ids.get(record.get("dataset") or ""))
        if tests is None:
            continue
        seen = sorted(set(record.get("case_ids") or ()) & tests)
        if seen:
            problems.append(f"{record['file']}: trained on {len(seen)} test case(s) of fold {fold} "
                            f"({', '.join(seen[:5])}{', ...' if len(seen) > 5 else ''})")
        elif record.get("fold") is not None and int(record["fold"]) != fold:
            problems.append(f"{record['file']}: trained on fold {record['fold']}'s training cases, which hold "
                            f"test cases of fold {fold} (map one checkpoint per fold: "
                            "generators.difftumor.checkpoints.<organ> = {0 = \"dir\", ...})")
    return problems


def check_cell_generator(cell, checkpoint: str | None, datasets: Mapping[str, Any]) -> None:
    """InputError when the generator of ``cell`` (its checkpoint folder) has seen a test case of
    ``cell.fold`` in the target's or the source's dataset (``datasets``: organ -> Dataset)."""
    if not checkpoint or checkpoint == "auto" or cell.generator_config().get("name") != "difftumor":
        return
    if not Path(checkpoint).is_dir():
        raise InputError(f"generators.difftumor.checkpoints: {checkpoint}: checkpoint folder not found "
                         f"(cell {cell.run_name})")
    tests = {key: set(ds.fold(cell.fold)[1]) for organ, ds in datasets.items()
             if organ in (cell.organ, cell.synth_source) for key in (ds.name, ds.fingerprint())}
    records = model_records(checkpoint, cell.synth_source)
    problems = leaks(records, cell.fold, tests)
    if cell.cross_organ and cell.organ in datasets:  # Table 3 off-diagonal: no real tumor of the target
        target = datasets[cell.organ]
        problems += [f"{r['file']}: trained on real tumors of the target {cell.organ} ({target.name})"
                     for r in records if r.get("dataset") in (target.name, target.fingerprint())
                     or r.get("dataset_fingerprint") == target.fingerprint()]
    if problems:
        raise InputError(f"cell {cell.run_name}: its DiffTumor generator has seen its test fold: "
                         + "; ".join(problems))


def check_checkpoints(grid, cells) -> None:
    """`check_cell_generator` for every cell with a given (not "auto") checkpoint, before any run."""
    from benchmark.data import Dataset

    opened: dict[str, Any] = {}
    for cell in cells:
        checkpoint = cell.generator_config().get("checkpoint")
        if not checkpoint or checkpoint == "auto":
            continue
        for organ in {cell.organ, cell.synth_source}:
            if organ not in opened:
                opened[organ] = Dataset.open(grid.datasets[organ])
        check_cell_generator(cell, checkpoint, opened)
