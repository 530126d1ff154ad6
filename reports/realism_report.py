"""The grid report's realism section: the radiomics run and the scored reader study of *this* grid.

A run belongs to the grid when it was logged in the grid's MLflow experiment (``tumorbench
radiomics --experiment GRID``, ``tumorbench reader-study score --experiment GRID``) and its
dataset fingerprints agree with the grid cells' ``dataset_fingerprint`` for every organ both
have (when the cells log them). The newest such run of each kind is shown, named by run id;
realism runs of other experiments are never picked up.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from reports.html import Section, realism_html
from tumorbench_common import mlflow_tags as T
from reports.plots import Figure

SCORE_METRICS = ("frechet_pca", "frechet", "c2st_auc")


def grid_fingerprints(grid: Any) -> dict[str, set[str]]:
    """organ -> dataset fingerprints the grid's cells were trained on (from their params)."""
    found: dict[str, set[str]] = {}
    for cell in grid.cells.values():
        if cell.params.get("dataset_fingerprint"):
            found.setdefault(cell.organ, set()).add(cell.params["dataset_fingerprint"])
    return found


def same_data(run_tags: dict[str, str], grid_prints: dict[str, set[str]]) -> bool:
    """False when the run names a fingerprint for an organ the grid trained on different data."""
    try:
        prints = json.loads(T.read_tag(run_tags, T.DATASET_FINGERPRINTS) or "{}")
    except json.JSONDecodeError:
        return False
    return all(prints[o] in grid_prints[o] for o in set(prints) & set(grid_prints))


def grid_runs(grid: Any, kind: str) -> list[Any]:
    """Finished runs of ``kind`` in the grid's experiment on the grid's data, newest first."""
    client = grid.client()
    runs = client.search_runs([grid.experiment_id], filter_string=f"tags.`{T.KIND}` = '{kind}'",
                              order_by=["attributes.start_time DESC"], max_results=200)
    prints = grid_fingerprints(grid)
    return [r for r in runs if r.info.status == "FINISHED" and same_data(r.data.tags, prints)]


def _copy(folder: Path, dest: Path, prefix: str) -> dict[str, Path]:
    """Copy a run's top-level CSV/PNG files to ``dest`` as ``<prefix>_<name>``."""
    dest.mkdir(parents=True, exist_ok=True)
    copies = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in (".csv", ".png"):
            copies[path.name] = dest / f"{prefix}_{path.name}"
            shutil.copy2(path, copies[path.name])
    return copies


def _fmt(value: Any, digits: int = 2) -> str:
    return "—" if value is None or value != value else f"{float(value):.{digits}f}"


def scores_summary(scores: Any) -> Any:
    """realism_scores.csv in reading order: each score, its permutation p, and the size-matched
    score against the real-vs-real floor (mean ± SD over subsamples)."""
    import pandas as pd

    rows = []
    for r in scores.to_dict("records"):
        row = {"organ": r["organ"], "generator": r["generator"], "n real / synthetic": f"{r['n_real']} / {r['n_other']}",
               "matched n per side": r.get("n_matched")}
        for name in SCORE_METRICS:
            row[name] = f"{_fmt(r.get(name), 3)} (p {_fmt(r.get(f'{name}_p'), 3)})"
            row[f"{name} matched vs floor"] = (f"{_fmt(r.get(f'{name}_matched'))} ± {_fmt(r.get(f'{name}_matched_sd'))} vs "
                                               f"{_fmt(r.get(f'{name}_floor'))} ± {_fmt(r.get(f'{name}_floor_sd'))}")
        rows.append(row)
    return pd.DataFrame(rows)


def table1(scores: Any, group: str = "all") -> Any:
    """Reader-study Table 1: one row per reader (and pooled, group ``all``) or per group level
    (pooled or the single reader), one column per metric as ``value [CI] p``."""
    if group == "all":
        sub, index = scores[scores["group"] == "all"], "reader"
    else:
        who = "pooled" if (scores["reader"] == "pooled").any() else scores["reader"].iloc[0]
        sub, index = scores[(scores["reader"] == who) & (scores["group"] != "all")].copy(), "level"
        sub["level"] = sub["group"] + ": " + sub["level"].astype(str)
    cell = [f"{_fmt(r.value)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] p {_fmt(r.p_value, 3)}"
            for r in sub.itertuples()]
    table = sub.assign(cell=cell).pivot_table(index=index, columns="metric", values="cell", aggfunc="first", sort=False)
    chance = scores.drop_duplicates("metric").set_index("metric")["chance"]
    table.columns = [f"{m} (chance {_fmt(chance[m])})" for m in table.columns]
    return table.reset_index()


def _radiomics_part(grid: Any, run: Any, dest: Path) -> tuple[list[Path], list[Figure], str]:
    import pandas as pd

    folder = grid.artifact_path(run.info.run_id, "")
    if folder is None:
        return [], [], f"Realism run {run.info.run_id} has no artifacts."
    copies = _copy(folder, dest, "radiomics")
    source = f"MLflow run {run.info.run_id} (experiment {grid.experiment_name})"
    csvs, shown = [], set()
    scores = pd.read_csv(copies["realism_scores.csv"]) if "realism_scores.csv" in copies else None
    if scores is not None and {"organ", "generator", "n_real", "n_other"} <= set(scores.columns):
        csvs.append(dest / "realism_scores_summary.csv")
        scores_summary(scores).to_csv(csvs[-1], index=False)
        shown.add("realism_scores.csv")  # the full table stays in the folder, the summary is shown
    csvs += [p for name, p in copies.items() if name.endswith(".csv") and name not in shown]
    figures = [Figure(p, name[:-4].replace("_", " "), f"radiomics, {source}")
               for name, p in copies.items() if name.endswith(".png")]
    return csvs, figures, f"Radiomics: {source}."


def _reader_part(grid: Any, run: Any, dest: Path) -> tuple[list[Path], list[Figure], str]:
    import pandas as pd

    folder = grid.artifact_path(run.info.run_id, "")
    if folder is None or not (folder / "scores.csv").is_file():
        return [], [], f"Reader-study run {run.info.run_id} has no scores.csv."
    copies = _copy(folder, dest, "reader")
    scores = pd.read_csv(copies["scores.csv"], dtype={"level": str})
    source = f"MLflow run {run.info.run_id}, study {T.read_tag(run.data.tags, T.STUDY_ID, '?')} ({T.read_tag(run.data.tags, T.TASK, '?')})"
    csvs = [dest / "table1_readers.csv", dest / "table1_groups.csv"]
    table1(scores).to_csv(csvs[0], index=False)
    if (scores["group"] != "all").any():
        table1(scores, "groups").to_csv(csvs[1], index=False)
    else:
        csvs.pop()
    csvs += [copies[n] for n in ("agreement.csv", "confusion.csv") if n in copies]
    figures = [Figure(copies[n], title, f"reader study, {source}")
               for n, title in (("scores.png", "Fig 8 style: readers vs chance"),
                                ("scores_by_group.png", "Fig 8 style: by generator, organ, size"),
                                ("cases_by_source.png", "Fig 9 style: cases by source, small to large")) if n in copies]
    return csvs, figures, f"Reader study (Table 1): {source}."


def realism_section(grid: Any, realism_dir: Path | None, out: Path) -> Section | None:
    """The report section, or None when the grid has neither a realism run nor a reader study
    (and no ``--realism`` folder was given)."""
    dest = out / "realism"
    csvs, figures, notes = [], [], []
    for kind, part in (("realism", _radiomics_part), ("reader_study", _reader_part)):
        runs = grid_runs(grid, kind)
        if runs:
            c, f, note = part(grid, runs[0], dest)
            csvs, figures, notes = csvs + c, figures + f, notes + [note]
    if realism_dir:
        copies = _copy(Path(realism_dir), dest, "dir")
        csvs += [p for p in copies.values() if p.suffix == ".csv"]
        figures += [Figure(p, p.stem[4:].replace("_", " "), f"from --realism {Path(realism_dir).name}")
                    for p in copies.values() if p.suffix == ".png"]
        notes.append(f"Folder given with --realism: {Path(realism_dir).name}.")
    if not (csvs or figures):
        return None
    return Section("realism", "Realism", "Tumor realism (radiomics, reader study)",
                   "Runs logged in this grid's experiment on its data: " + " ".join(notes),
                   figures=figures, html=realism_html(csvs))
