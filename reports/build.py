"""`tumorbench report`: assemble every section from MLflow + result files into an HTML folder.

Output: ``OUT/index.html``, ``OUT/img/*.png``, ``OUT/tables/*.csv|*.tex`` (including the pooled
``per_case.csv`` and ``per_lesion.csv``), ``OUT/realism/`` (optional). The folder is built in a temp
directory and swapped in at the end, so a failure leaves the old report untouched. The record CSVs
and the paired-test table are also logged as artifacts of a run tagged ``tumorbench.kind=report`` in
the grid's experiment (``ReportOptions.log_to_mlflow``)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reports import detection, inference, paired_detection, plan, plots, provenance, qualitative, records, tables
from reports.bootstrap import N_BOOT
from reports.html import Section, provenance_html, render_index
from reports.loader import GridData, expected_cells, load_grid
from reports.palette import regime_colors
from reports.paper import load_paper_results
from reports.realism_report import realism_section
from reports.run_scope import describe_run
from reports.scorecard_report import scorecard_section
from tumorbench_common import mlflow_tags as T

DEFAULT_UI = "http://127.0.0.1:5000"
MIN_BOOT = 1000


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report (all have defaults that match the paper's figures)."""

    experiment: str | None = None
    tracking_uri: str | None = None
    realism_dir: Path | None = None
    ui_url: str = DEFAULT_UI
    qualitative_cases: int = 3
    hardest_cases: int = 10
    seed: int = 0  # bootstrap seed (paired CIs, ranking, clustered intervals)
    n_boot: int = N_BOOT
    log_to_mlflow: bool = True  # log the per-case/per-lesion CSVs as a tumorbench.kind=report run


def _metric_sections(grid: GridData, expected, paper, opts: ReportOptions, img: Path, per_case: pd.DataFrame,
                     per_lesion: pd.DataFrame) -> list[Section]:
    colors = regime_colors(set(grid.values("regime")) | set(per_case.regime))
    backbones = sorted(set(tables.axis(grid, expected, 1)) | set(per_lesion.backbone))
    boot = {"seed": opts.seed, "n_boot": opts.n_boot}
    t3 = [tables.table3(grid, per_lesion, paper, expected, b, **boot) for b in backbones]
    folds = [tables.fold_table(grid, paper, expected, o) for o in tables.axis(grid, expected, 0)]
    seeds = inference.seeds_table(per_case)
    paired = [inference.paired_table(per_case, **boot), inference.ranking_table(per_case, **boot)]
    det_table, det_data = detection.detection_table(per_lesion, **boot)
    det_table.missing += records.without_summary(grid)
    demo_table, demo_data = detection.demographics_table(per_case, per_lesion, **boot)
    cross = tables.NO_CROSS_ORGAN not in t3[0].notes if t3 else False
    return [
        Section("table3", "Table 3", "Cross-organ early-tumor sensitivity (source → target)", "Can tumors "
                "from one organ (real, or made by that organ's generator) teach a model to find early tumors "
                "(radius ≤ 10 mm) in another organ?" if cross else "Early-tumor sensitivity (radius ≤ 10 mm) "
                "of each organ's own models only: no cross-organ cell was run (see the note under the table).", t3),
        Section("folds", "Tables 4–6", "Tumor segmentation per fold (DSC, NSD)", "Real vs synthetic "
                "training per organ and backbone, next to the paper's per-fold values.", folds),
        Section("paired", "Paired tests", "Regimes compared on pooled test cases", "Every regime pair per "
                "organ × backbone on the same test cases pooled over folds; primary metric DSC; Holm within "
                "organ × metric; ranking stability by bootstrap; seed-to-seed variation when the grid has "
                "several seeds.", paired + ([seeds] if seeds else [])),
        Section("detection", "Fig 10", "Detection by tumor size, paired detection tests, patient-level detection",
                "", [det_table, paired_detection.detection_pairs_table(per_lesion, **boot),
                     detection.patient_table(per_case)], plots.detection_figures(det_data, img, colors)),
        Section("demographics", "Fig 14", "Performance by age and sex", "", [demo_table],
                plots.demographics_figures(demo_data, img, colors)),
    ]


def _case_sections(grid: GridData, opts: ReportOptions, img: Path) -> list[Section]:
    figs = [qualitative.qualitative_figure(grid, organ, img / f"qualitative_{organ}.png", opts.qualitative_cases)
            for organ in grid.values("organ")]
    outcomes = detection.case_outcomes(grid)
    _, hardest_ids = detection.hardest_cases(grid, opts.hardest_cases)
    locations = {k: qualitative.describe_location(grid, k[0], k[1], outcomes[k]) for k in hardest_ids}
    hard_table, _ = detection.hardest_cases(grid, opts.hardest_cases, locations)
    hard_figs = []
    for organ in grid.values("organ"):
        cases = [(cid, outcomes[(o, cid)]) for o, cid in hardest_ids[:4] if o == organ]
        fig = qualitative.qualitative_figure(grid, organ, img / f"hardest_{organ}.png", cases=cases,
                                             title=f"Hardest cases — {organ}") if cases else None
        hard_figs += [fig] if fig else []
    qual = Section("qualitative", "Figs 11–13", "Qualitative comparison", "Same validation cases for every "
                   "backbone × regime; cases picked automatically where a tumor is found by one model and "
                   "missed by another, false positives differ, or DSC varies most.", figures=[f for f in figs if f])
    if not qual.figures:
        qual.notes.append("No case was evaluated by two models with differing results (or predictions are missing).")
    return [qual, Section("hardest", "Fig 16", "Hardest cases", "", [hard_table], hard_figs)]


def _provenance_section(grid: GridData, expected, opts: ReportOptions, grid_files) -> tuple[Section, dict]:
    prov = provenance.summarize(grid, opts.ui_url)
    files = [{"name": g.run.name, "run_id": g.run.run_id, "status": g.run.status, "text": g.text,
              "url": provenance.run_ui_url(opts.ui_url, g.run.experiment_id, g.run.run_id),
              "started": provenance.fmt_time(g.run.start_time), "duration": provenance.fmt_duration(g.run)}
             for g in grid_files]
    unfinished = tables.missing_notes(grid, expected, lambda k: True)
    return Section("provenance", "Provenance", "Run provenance", "", html=provenance_html(prov, files, unfinished)), prov


RECORD_FILES = ("per_case.csv", "per_lesion.csv")



def _write(folder: Path, sections: list[Section], prov: dict, n_cells: int, frames, regimes) -> None:
    from tumorbench_common.io import write_text_atomic

    (folder / "tables").mkdir(parents=True, exist_ok=True)
    for name, frame in zip(RECORD_FILES, frames):
        write_text_atomic(folder / "tables" / name, frame.to_csv(index=False))
    for section in sections:
        for table in section.tables:
            table.write(folder / "tables")
    render_index(folder, sections, prov, n_cells, regimes)


def report_inputs_hash(grid: GridData, opts: ReportOptions) -> str:
    """What the report is computed from: the runs it reads and the options (not where it is written)."""
    import hashlib
    import json

    runs = sorted(r.run_id for r in [*grid.runs.values(), *grid.parents])
    options = {k: str(v) for k, v in sorted(vars(opts).items()) if k not in ("log_to_mlflow", "tracking_uri")}
    return hashlib.sha256(json.dumps([runs, options]).encode()).hexdigest()[:12]


@contextmanager
def _report_run(grid: GridData, opts: ReportOptions):
    """A ``tumorbench.kind=report`` run in the grid's experiment (None when logging is off). A report of
    the same inputs (`report_inputs_hash`) reuses that run and overwrites its artifacts: rebuilding a
    report adds no run."""
    if not opts.log_to_mlflow:
        yield None
        return
    client, inputs = grid.client(), report_inputs_hash(grid, opts)
    same = client.search_runs([grid.experiment_id], max_results=1, filter_string=(
        f"tags.`{T.KIND}` = 'report' and tags.`{T.INPUTS_HASH}` = '{inputs}'"))
    if same:
        run_id = same[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = client.create_run(grid.experiment_id, run_name="report", tags={
            T.KIND: "report", T.INPUTS_HASH: inputs, **T.source_tags()}).info.run_id
        client.log_param(run_id, "bootstrap_seed", opts.seed)
        client.log_param(run_id, "n_boot", opts.n_boot)
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def _log_artifacts(grid: GridData, run_id: str | None, folder: Path) -> None:
    if run_id:
        for name in (*RECORD_FILES, "paired.csv", "ranking.csv", "detection_paired.csv"):
            grid.client().log_artifact(run_id, str(folder / "tables" / name))


def build_report(out: str | Path, options: ReportOptions = ReportOptions(), open_browser: bool = False,
                 progress: bool = True) -> Path:
    """Render the full report into ``out`` and return the path of ``out/index.html``.

    Raises:
        InputError: tracking store / experiment missing or no cell runs.
    """
    from tqdm import tqdm

    from tumorbench_common.errors import InputError
    from tumorbench_common.io import atomic_dir

    if options.n_boot < MIN_BOOT:
        raise InputError(f"--n-boot {options.n_boot}: expected at least {MIN_BOOT} bootstrap resamples "
                         f"(default {N_BOOT}; the tails of a 95 % interval need them)")
    if options.realism_dir is not None and not Path(options.realism_dir).is_dir():
        raise InputError(f"--realism {options.realism_dir}: folder not found (expected realism_scores.csv and PNGs)")
    grid = load_grid(options.tracking_uri, options.experiment)
    grid_files = provenance.read_grid_files(grid)
    spec = next((g.spec for g in grid_files if g.spec), None)
    expected = expected_cells(grid, spec)
    paper = load_paper_results()
    out = Path(out)
    steps = tqdm(total=4, desc="report", disable=not progress)
    per_case, per_lesion = records.collect(grid)
    with _report_run(grid, options) as run_id, atomic_dir(out) as tmp:
        img = tmp / "img"
        sections = _metric_sections(grid, expected, paper, options, img, per_case, per_lesion)
        steps.update()
        sections += [Section("curves", "Curves", "Training curves", "", figures=plots.training_curves(grid, img))]
        steps.update()
        sections += _case_sections(grid, options, img)
        steps.update()
        realism = realism_section(grid, options.realism_dir, tmp)
        extra = [s for s in (realism, scorecard_section(grid, tmp)) if s]
        prov_section, prov = _provenance_section(grid, expected, options, grid_files)
        prov["report_run"] = run_id
        prov["scope"] = describe_run(grid) + [plan.PLAN_LINE, plan.seeds_sentence(
            inference.max_seeds(per_case))]  # what was run and how it is tested, shown at the top
        _write(tmp, sections + extra + [prov_section], prov, len(grid.cells),
               (per_case, per_lesion), sorted(set(grid.values("regime")) | set(per_case.regime)))
        _log_artifacts(grid, run_id, tmp)
        steps.update()
    steps.close()
    index = out / "index.html"
    if open_browser:
        import webbrowser

        webbrowser.open(index.resolve().as_uri())
    return index
