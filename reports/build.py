"""`tumorbench report`: assemble every section from MLflow + result files into an HTML folder.

Output: ``OUT/index.html``, ``OUT/img/*.png``, ``OUT/tables/*.csv|*.tex``, ``OUT/realism/`` (optional).
The folder is built in a temp directory and swapped in at the end, so a failure leaves the old
report untouched."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from reports import detection, plots, provenance, qualitative, tables
from reports.html import Section, provenance_html, realism_html, render_index
from reports.loader import GridData, expected_cells, load_grid
from reports.paper import load_paper_results
from reports.run_scope import describe_run

DEFAULT_UI = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report (all have defaults that match the paper's figures)."""

    experiment: str | None = None
    tracking_uri: str | None = None
    realism_dir: Path | None = None
    ui_url: str = DEFAULT_UI
    qualitative_cases: int = 3
    hardest_cases: int = 10
    seed: int = 0  # bootstrap seed (Table 7)
    n_boot: int = 2000


def _metric_sections(grid: GridData, expected, paper, opts: ReportOptions, img: Path) -> list[Section]:
    t3 = [tables.table3(grid, paper, expected, b) for b in tables.axis(grid, expected, 1)]
    folds = [tables.fold_table(grid, paper, expected, o) for o in tables.axis(grid, expected, 0)]
    t7 = tables.table7(grid, paper, expected, opts.seed, opts.n_boot)
    det_table, det_data = detection.detection_table(grid, expected)
    demo_table, demo_data = detection.demographics_table(grid, expected)
    det_fig = plots.detection_figure(det_data, img / "fig10_detection.png")
    demo_fig = plots.demographics_figure(demo_data, img / "fig14_demographics.png")
    return [
        Section("table3", "Table 3", "Cross-organ early-tumor sensitivity", "Can a model trained on one "
                "organ's (real or synthetic) tumors detect early tumors (radius ≤ 10 mm) in other organs?", t3),
        Section("folds", "Tables 4–6", "Tumor segmentation per fold (DSC, NSD)", "Real vs synthetic "
                "training per organ and backbone.", folds),
        Section("table7", "Table 7", "Real vs Hu vs DiffTumor, paired", "", [t7]),
        Section("detection", "Fig 10", "Detection by tumor size and patient-level detection", "",
                [det_table, detection.patient_table(grid, expected)], [f for f in [det_fig] if f]),
        Section("demographics", "Fig 14", "Performance by age and sex", "", [demo_table],
                [f for f in [demo_fig] if f]),
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


def _realism_section(grid: GridData, opts: ReportOptions, out: Path) -> Section | None:
    folders = []
    for run in grid.realism_runs[:1]:
        local = grid.artifact_path(run.run_id, "")
        if local:
            folders.append(local)
    if opts.realism_dir:
        folders.append(Path(opts.realism_dir))
    if not folders:
        return None
    dest = out / "realism"
    dest.mkdir(parents=True, exist_ok=True)
    csvs, figures = [], []
    for i, folder in enumerate(folders):
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".csv", ".png") and path.is_file():
                copy = dest / f"{i}_{path.name}"
                shutil.copy2(path, copy)
                if path.suffix.lower() == ".csv":
                    csvs.append(copy)
                else:
                    figures.append(plots.Figure(copy, path.stem.replace("_", " "), f"from {folder}"))
    return Section("realism", "Realism", "Tumor realism (radiomics)", "Produced by `tumorbench radiomics`; "
                   "shown as delivered.", figures=figures, html=realism_html(csvs))


def _provenance_section(grid: GridData, expected, opts: ReportOptions, grid_files) -> tuple[Section, dict]:
    prov = provenance.summarize(grid, opts.ui_url)
    files = [{"name": g.run.name, "run_id": g.run.run_id, "status": g.run.status, "text": g.text,
              "url": provenance.run_ui_url(opts.ui_url, g.run.experiment_id, g.run.run_id),
              "started": provenance.fmt_time(g.run.start_time), "duration": provenance.fmt_duration(g.run)}
             for g in grid_files]
    unfinished = tables.missing_notes(grid, expected, lambda k: True)
    return Section("provenance", "Provenance", "Run provenance", "", html=provenance_html(prov, files, unfinished)), prov


def _write(folder: Path, sections: list[Section], prov: dict, n_cells: int) -> None:
    for section in sections:
        for table in section.tables:
            table.write(folder / "tables")
    render_index(folder, sections, prov, n_cells)


def build_report(out: str | Path, options: ReportOptions = ReportOptions(), open_browser: bool = False,
                 progress: bool = True) -> Path:
    """Render the full report into ``out`` and return the path of ``out/index.html``.

    Raises:
        InputError: tracking store / experiment missing or no cell runs.
    """
    from tqdm import tqdm

    from benchmark.errors import InputError
    from benchmark.io import atomic_dir

    if options.realism_dir is not None and not Path(options.realism_dir).is_dir():
        raise InputError(f"--realism {options.realism_dir}: folder not found (expected realism_scores.csv and PNGs)")
    grid = load_grid(options.tracking_uri, options.experiment)
    grid_files = provenance.read_grid_files(grid)
    spec = next((g.spec for g in grid_files if g.spec), None)
    expected = expected_cells(grid, spec)
    paper = load_paper_results()
    out = Path(out)
    steps = tqdm(total=4, desc="report", disable=not progress)
    with atomic_dir(out) as tmp:
        img = tmp / "img"
        sections = _metric_sections(grid, expected, paper, options, img)
        steps.update()
        sections += [Section("curves", "Curves", "Training curves", "", figures=plots.training_curves(grid, img))]
        steps.update()
        sections += _case_sections(grid, options, img)
        steps.update()
        realism = _realism_section(grid, options, tmp)
        prov_section, prov = _provenance_section(grid, expected, options, grid_files)
        prov["scope"] = describe_run(grid)  # what was run, shown at the top
        _write(tmp, sections + ([realism] if realism else []) + [prov_section], prov, len(grid.cells))
        steps.update()
    steps.close()
    index = out / "index.html"
    if open_browser:
        import webbrowser

        webbrowser.open(index.resolve().as_uri())
    return index
