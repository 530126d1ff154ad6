"""`tumorbench report` end to end on a tiny fake grid: numbers equal MLflow, missing cells, paper columns."""
from __future__ import annotations

import csv
import io
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from test_report_fakegrid import CASES, FAILED, build_fake_grid


class TableParser(HTMLParser):
    """Collects every <table data-table=KEY>: header texts/classes and body cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._key, self._cell, self._row, self._in_head = {}, None, None, None, False
        self.links, self.imgs, self.notes = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("data-table"):
            self._key = attrs["data-table"]
            self.tables[self._key] = {"head": [], "head_cls": [], "rows": [], "cls": []}
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self._key:
            self._row = ([], [])
        elif tag in ("th", "td") and self._key:
            self._cell = [attrs.get("class", ""), ""]
        elif tag == "a":
            self.links.append(attrs.get("href", ""))
        elif tag == "img":
            self.imgs.append(attrs.get("src", ""))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            table = self.tables[self._key]
            if self._in_head:
                table["head_cls"].append(self._cell[0])
                table["head"].append(self._cell[1].strip())
            else:
                self._row[0].append(self._cell[1].strip())
                self._row[1].append(self._cell[0])
            self._cell = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "tr" and self._row is not None and not self._in_head:
            if self._row[0]:
                self.tables[self._key]["rows"].append(self._row[0])
                self.tables[self._key]["cls"].append(self._row[1])
            self._row = None
        elif tag == "table":
            self._key = None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from benchmark.cli import main

    tmp = tmp_path_factory.mktemp("grid")
    grid = build_fake_grid(tmp)
    realism = tmp / "realism_in"
    realism.mkdir()
    (realism / "realism_scores.csv").write_text("regime,feature,ks_distance\nhu,firstorder_Mean,0.1234567\n")
    # through the CLI, so the command line is exercised once end to end
    assert main(["report", "--tracking-uri", grid["uri"], "--out", str(tmp / "report"), "--realism", str(realism),
                 "--no-progress"]) == 0
    index = tmp / "report" / "index.html"
    html = index.read_text()
    parser = TableParser()
    parser.feed(html)
    return {"grid": grid, "index": index, "html": html, "tables": parser.tables, "parser": parser}


def mlflow_runs(uri: str):
    """Read the runs back independently of the report code."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=["fake_grid"], filter_string="tags.`tumorbench.kind` = 'cell'")


def read_csv(report, key):
    return list(csv.DictReader(io.StringIO((report["index"].parent / "tables" / f"{key}.csv").read_text())))


def html_row(table, **match):
    head = table["head"]
    for row in table["rows"]:
        if all(row[head.index(k)] == v for k, v in match.items()):
            return dict(zip(head, row))
    raise AssertionError(f"no row {match} in {table['rows']}")


def test_fold_tables_equal_mlflow_metrics(report):
    runs = mlflow_runs(report["grid"]["uri"])
    finished = runs[runs.status == "FINISHED"]
    assert len(finished) == 7
    for _, run in finished.iterrows():
        organ, regime, fold = run["tags.organ"], run["tags.regime"], run["tags.fold"]
        key = "table4_liver" if organ == "liver" else "table5_pancreas"
        for metric, label in (("tumor_dsc", "DSC"), ("tumor_nsd", "NSD")):
            expected = 100 * run[f"metrics.{metric}"]
            rows = [r for r in read_csv(report, key) if r["Regime"] == regime and r["Metric"] == label]
            assert float(rows[0][f"fold {fold}"]) == pytest.approx(expected, abs=1e-9)
            shown = html_row(report["tables"][key], Regime=regime, Metric=label)[f"fold {fold}"]
            assert shown == f"{expected:.1f}"


def test_fold_table_mean_and_sd(report):
    runs = mlflow_runs(report["grid"]["uri"])
    sel = runs[(runs["tags.organ"] == "liver") & (runs["tags.regime"] == "real")]
    values = 100 * sel["metrics.tumor_dsc"].to_numpy()
    row = html_row(report["tables"]["table4_liver"], Regime="real", Metric="DSC")
    assert row["mean"] == f"{values.mean():.1f}" and row["sd"] == f"{values.std(ddof=1):.1f}"


def test_missing_cell_is_dash_with_note(report):
    table = report["tables"]["table5_pancreas"]
    row = html_row(table, Regime="difftumor", Metric="DSC")
    assert row["fold 1"] == "—" and row["n"] == "1"
    csv_row = [r for r in read_csv(report, "table5_pancreas") if r["Regime"] == "difftumor" and r["Metric"] == "DSC"][0]
    assert csv_row["fold 1"] == ""
    label = "·".join(map(str, FAILED[:3])) + f"·f{FAILED[3]}"
    assert f"{label}: run FAILED, not finished" in report["html"]
    # the liver table has no missing cell, so no missing note for it
    assert "—" not in [v for r in report["tables"]["table4_liver"]["rows"] for v in r[:8]]


def test_paper_values_in_own_columns(report):
    from reports.paper import load_paper_results

    table = report["tables"]["table4_liver"]
    paper = load_paper_results()
    pub_cols = [h for h, c in zip(table["head"], table["head_cls"]) if "pub" in c]
    assert pub_cols == ["paper fold 0", "paper fold 1", "paper mean (5 folds)"]
    ours_cols = [h for h, c in zip(table["head"], table["head_cls"]) if c == "ours"]
    assert not set(ours_cols) & set(pub_cols)
    row = html_row(table, Regime="real", Metric="DSC")
    assert row["paper fold 0"] == "62.3" == f"{paper.get(4, 'unet', 'tumor_dsc', 'liver', 'real', 0):.1f}"
    assert row["paper mean (5 folds)"] == "62.5"
    assert row["fold 0"] != row["paper fold 0"]
    csv_row = [r for r in read_csv(report, "table4_liver") if r["Regime"] == "real" and r["Metric"] == "DSC"][0]
    assert float(csv_row["paper fold 0"]) == 62.3 and float(csv_row["fold 0"]) != 62.3
    # Table 7 publishes U-Net fold 0 only: fold 1 paper cells are missing, fold 0 are the paper's
    t7 = report["tables"]["table7"]
    assert html_row(t7, Organ="pancreas", Fold="0", Metric="DSC")["paper difftumor"] == "64.8"
    assert html_row(t7, Organ="liver", Fold="1", Metric="DSC")["paper real"] == "—"
    cls = dict(zip(t7["head"], t7["cls"][0]))
    assert "pub" in cls["paper real"] and "pub" not in cls["real"]


def test_table7_statistics_from_summary(report):
    """Δ, Wilcoxon p and CI come from per-case DSC in summary.json (recomputed here with scipy)."""
    import json

    from scipy.stats import wilcoxon

    grid = report["grid"]
    per_case = {}
    for regime in ("real", "difftumor"):
        rid = grid["run_ids"][("liver", "unet", regime, 0)]
        summary = json.loads((grid["root"] / "artifacts" / rid / "artifacts" / "summary.json").read_text())
        per_case[regime] = {c["case_id"]: 100 * c["tumor_dsc"] for c in summary["metric_per_case"] if c["has_tumor"]}
    cases = sorted(per_case["real"])
    diffs = np.array([per_case["difftumor"][c] - per_case["real"][c] for c in cases])
    row = [r for r in read_csv(report, "table7") if r["Organ"] == "liver" and r["Fold"] == "0" and r["Metric"] == "DSC"][0]
    assert float(row["Δ difftumor−real"]) == pytest.approx(diffs.mean())
    assert int(row["n cases difftumor"]) == len(cases) == 2
    p = wilcoxon([per_case["real"][c] for c in cases], [per_case["difftumor"][c] for c in cases]).pvalue
    assert float(row["p difftumor vs real"]) == pytest.approx(p)
    lo, hi = float(row["95% CI difftumor−real_lo"]), float(row["95% CI difftumor−real_hi"])
    assert diffs.min() - 1e-9 <= lo <= diffs.mean() <= hi <= diffs.max() + 1e-9


def test_table3_cross_organ(report):
    runs = mlflow_runs(report["grid"]["uri"])
    sel = runs[(runs["tags.organ"] == "liver") & (runs["tags.regime"] == "real") & (runs.status == "FINISHED")]
    expected = 100 * sel["metrics.xorgan_early_sensitivity_pancreas"].mean()
    row = html_row(report["tables"]["table3_unet"], **{"Source organ": "liver", "Regime": "real"})
    assert row["pancreas (ours)"] == f"{expected:.1f}"
    assert row["pancreas (paper)"] == "—"  # the paper's Table 3 has no U-Net rows


def test_detection_counts_pool_summaries(report):
    rows = [r for r in read_csv(report, "fig10_patient") if r["Organ"] == "liver" and r["Regime"] == "real"]
    # real-regime models miss tumors in even-numbered cases and flag a false positive in c5
    tumor_cases = [c for f in CASES.values() for c in f if c not in ("c2", "c5")]
    missed = [c for c in tumor_cases if int(c[1:]) % 2 == 0]
    assert int(rows[0]["TP"]) == len(tumor_cases) - len(missed) and int(rows[0]["FN"]) == len(missed)
    assert int(rows[0]["FP"]) == 1 and int(rows[0]["TN"]) == 1
    assert float(rows[0]["sensitivity"]) == pytest.approx(100 * 2 / 4)
    bins = [r for r in read_csv(report, "fig10_size_bins") if r["Organ"] == "liver" and r["Regime"] == "difftumor"][0]
    assert int(bins["n r 0-5 mm"]) + int(bins["n r 5-10 mm"]) == len(tumor_cases)
    assert float(bins["sens r 0-5 mm"]) == 100.0


def test_hardest_cases_and_figures(report):
    rows = read_csv(report, "fig16_hardest")
    means = [float(r["mean tumor DSC"]) for r in rows]
    assert means == sorted(means)
    assert all("unet·real" in r["missed by"] for r in rows if float(r["min tumor DSC"]) == 0.0)
    out = report["index"].parent
    for img in report["parser"].imgs:
        assert (out / img).is_file(), img
    names = {Path(i).name for i in report["parser"].imgs}
    assert {"qualitative_liver.png", "fig10_detection.png", "curves_liver.png", "fig14_demographics.png"} <= names


def test_provenance_links_and_grid_file(report):
    grid, html = report["grid"], report["html"]
    for rid in grid["run_ids"].values():
        url = f"http://127.0.0.1:5000/#/experiments/{grid['experiment_id']}/runs/{rid}"
        if rid in html:
            assert url in report["parser"].links or rid == grid["run_ids"][FAILED]
    finished = [rid for key, rid in grid["run_ids"].items() if key != FAILED]
    assert all(f"runs:/{rid}" in html for rid in finished)
    assert 'organs = [&#34;liver&#34;, &#34;pancreas&#34;]' in html  # grid.toml shown (escaped)
    assert "abc123def456" in html


def test_realism_section_embeds_csv(report):
    """Both sources: the MLflow run tagged tumorbench.kind=realism and the --realism folder."""
    assert 'id="realism"' in report["html"] and "0.1235" in report["html"] and "0.8765" in report["html"]


def test_tables_written_as_csv_and_latex(report):
    folder = report["index"].parent / "tables"
    for key in report["tables"]:
        tex = (folder / f"{key}.tex").read_text()
        assert tex.count(r"\begin{tabular}") == 1 and r"\bottomrule" in tex
    assert r"\textit{62.3}" in (folder / "table4_liver.tex").read_text()


def test_cli_errors_write_nothing(report, tmp_path, capsys):
    from benchmark.cli import main

    uri = report["grid"]["uri"]
    assert main(["report", "--tracking-uri", uri, "--experiment", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "'nope': no such experiment" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    missing_db = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["report", "--tracking-uri", missing_db, "--out", str(tmp_path / "y")]) == 2
    assert "MLflow database not found" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
    assert main(["report", "--tracking-uri", uri, "--realism", str(tmp_path / "nope"), "--out", str(tmp_path / "z")]) == 2
    assert "folder not found" in capsys.readouterr().err and not (tmp_path / "z").exists()


def test_atomic_output_keeps_old_report_on_failure(report, tmp_path, monkeypatch):
    import reports.build as build

    out = tmp_path / "keep"
    out.mkdir()
    (out / "index.html").write_text("old")

    def boom(*args, **kwargs):
        raise RuntimeError("section failed")

    monkeypatch.setattr(build, "_metric_sections", boom)
    with pytest.raises(RuntimeError):
        build.build_report(out, build.ReportOptions(tracking_uri=report["grid"]["uri"]), progress=False)
    assert (out / "index.html").read_text() == "old" and [p.name for p in out.iterdir()] == ["index.html"]


def test_bare_runs_without_artifacts_still_render(report, tmp_path):
    """A cell with metrics only (no summary.json, no files, no parent run) renders with — and notes."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from reports.build import ReportOptions, build_report

    client = MlflowClient(tracking_uri=report["grid"]["uri"])
    exp = client.create_experiment("bare_grid", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(exp, tags={"tumorbench.kind": "cell", "organ": "kidney", "backbone": "nnunet",
                                       "regime": "hu", "fold": "0"})
    client.log_batch(run.info.run_id, metrics=[Metric("tumor_dsc", 0.5, 0, 0), Metric("sens_0_5", 0.25, 0, 0)])
    client.set_terminated(run.info.run_id, "FINISHED")
    index = build_report(tmp_path / "out", ReportOptions(tracking_uri=report["grid"]["uri"], experiment="bare_grid"),
                         progress=False)
    parser = TableParser()
    parser.feed(index.read_text())
    row = html_row(parser.tables["table6_kidney"], Regime="hu", Metric="DSC")
    assert row["fold 0"] == "50.0" and row["paper fold 0"] == "—"
    assert html_row(parser.tables["table6_kidney"], Regime="hu", Metric="NSD")["fold 0"] == "—"
    assert html_row(parser.tables["fig10_size_bins"], Regime="hu")["sens r 0-5 mm"] == "25.0"  # metric fallback
    assert "kidney·nnunet·hu·f0: xorgan_early_sensitivity_kidney not logged" in index.read_text()
    assert "kidney·nnunet·hu·f0: tumor_nsd not logged" in index.read_text()
    assert (index.parent / "img" / "curves_kidney.png").is_file()  # curves panel says "no history"
