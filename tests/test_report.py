"""`tumorbench report` end to end on a tiny fake grid: numbers equal MLflow, missing cells, paper columns."""
from __future__ import annotations

import csv
import io
import json
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


def mlflow_runs(uri: str, main_only: bool = True):
    """Read the runs back independently of the report code (main grid, seed 0 unless ``main_only=False``)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["fake_grid"], filter_string="tags.`tumorbench.kind` = 'cell'")
    if main_only:
        runs = runs[(runs["params.seed"] == "0") & runs["params.synth_source"].isna()]
    return runs


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
        organ, regime, fold = run["params.organ"], run["params.regime"], run["params.fold"]
        key = "table4_liver" if organ == "liver" else "table5_pancreas"
        for metric, label in (("tumor_dsc", "DSC"), ("tumor_nsd", "NSD")):
            expected = 100 * run[f"metrics.{metric}"]
            rows = [r for r in read_csv(report, key) if r["Regime"] == regime and r["Metric"] == label]
            assert float(rows[0][f"fold {fold}"]) == pytest.approx(expected, abs=1e-9)
            shown = html_row(report["tables"][key], Regime=regime, Metric=label)[f"fold {fold}"]
            assert shown == f"{expected:.1f}"


def test_fold_table_mean_and_sd(report):
    runs = mlflow_runs(report["grid"]["uri"])
    sel = runs[(runs["params.organ"] == "liver") & (runs["params.regime"] == "real")]
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
    assert not [h for h, c in zip(report["tables"]["paired"]["head"], report["tables"]["paired"]["head_cls"])
                if "pub" in c]  # pooled tests are not the paper's fold-0 experiment: no published column


def _summary(grid, key, artifact="summary.json"):
    import json

    rid = grid["run_ids"][key]
    return json.loads((grid["root"] / "artifacts" / rid / "artifacts" / artifact).read_text())


def test_paired_statistics_pool_folds(report):
    """Δ, Wilcoxon p and CI come from per-case DSC of both test folds (recomputed here with scipy called
    with the report's options: Pratt zeros, exact sign-flip distribution); Holm within organ × metric."""
    from scipy.stats import PermutationMethod, wilcoxon

    grid = report["grid"]
    per_case = {r: {c["case_id"]: 100 * c["tumor_dsc"] for f in (0, 1)
                    for c in _summary(grid, ("liver", "unet", r, f))["metric_per_case"] if c["has_tumor"]}
                for r in ("real", "difftumor")}
    cases = sorted(per_case["real"])
    assert cases == ["c0", "c1", "c3", "c4"]  # both folds pooled
    a, b = [per_case["real"][c] for c in cases], [per_case["difftumor"][c] for c in cases]
    diffs = np.subtract(b, a)
    row = [r for r in read_csv(report, "paired") if r["Organ"] == "liver" and r["Metric"] == "DSC"][0]
    assert (row["A"], row["B"], int(row["n cases"]), int(row["folds"])) == ("real", "difftumor", 4, 2)
    assert float(row["Δ B−A"]) == pytest.approx(diffs.mean())
    exact = wilcoxon(a, b, zero_method="pratt", method=PermutationMethod(n_resamples=np.inf)).pvalue
    assert float(row["Wilcoxon p"]) == pytest.approx(exact) and row["test"] == "exact"
    lo, hi = float(row["95% CI of Δ_lo"]), float(row["95% CI of Δ_hi"])
    assert lo <= diffs.mean() <= hi
    # one comparison per organ × metric family here (one backbone, one pair): Holm p = raw p, not
    # multiplied by the 4 rows of the whole table
    family = [r for r in read_csv(report, "paired") if r["Holm family"] == "liver · DSC" and r["Wilcoxon p"]]
    assert len(family) == 1 and float(row["Holm p"]) == pytest.approx(float(row["Wilcoxon p"]))
    assert "Holm families (Holm within each family organ × metric" in report["html"]


def test_no_per_fold_only_comparison(report):
    """Regimes are compared on pooled cases only: no table with a p-value is keyed by fold."""
    import reports.tables

    assert not hasattr(reports.tables, "table7") and "table7" not in report["tables"]
    with_p = [k for k, t in report["tables"].items() if any(h.endswith(" p") or h.startswith("p ") for h in t["head"])]
    assert with_p == ["paired", "detection_paired"]
    assert all("Fold" not in report["tables"][k]["head"] for k in with_p)


def test_table3_pools_source_target_counts(report):
    """Hand-counted early-tumor hits, pooled over folds, with the protocol's source -> target rows."""
    t3 = report["tables"]["table3_unet"]
    row = lambda source, regime: html_row(t3, **{"Source organ": source, "Regime": regime})
    # real liver model on pancreas cases: only case c1 of fold 0 is hit; folds 0+1 hold 4 tumors
    assert row("liver", "real")["→ pancreas hits/n"] == "1/4" and row("liver", "real")["→ pancreas"] == "25.0"
    # liver generator -> pancreas: the pancreas model trained with the liver generator (odd cases hit),
    # not the liver DiffTumor model evaluated on pancreas (which hits all 4)
    assert row("liver", "difftumor")["→ pancreas hits/n"] == "2/4"
    assert row("liver", "difftumor")["→ pancreas 95% CI"] == "[15.0, 85.0]"  # Wilson 2/4
    # two seeds of the pancreas real model: 2/4 and 4/4 -> mean 3/4, sd between seeds 35.4
    assert row("pancreas", "real")["→ pancreas hits/n"] == "3/4" and row("pancreas", "real")["→ pancreas seed sd"] == "35.4"
    # a pancreas DiffTumor model evaluated on liver is not a Table 3 experiment
    assert row("pancreas", "difftumor")["→ liver"] == "—"
    assert "Row = source organ" in report["html"]


def test_record_csvs_and_mlflow_artifacts(report):
    """per_case.csv holds every case of every summary (own and cross-organ) and is logged to MLflow."""
    import mlflow
    import pandas as pd

    grid = report["grid"]
    per_case = pd.read_csv(report["index"].parent / "tables" / "per_case.csv")
    root = grid["root"] / "artifacts"
    expected = sum(len(json.loads(p.read_text())["metric_per_case"]) for p in root.rglob("summary.json"))
    assert len(per_case) == expected
    own = _summary(grid, ("liver", "unet", "real", 1))["metric_per_case"]
    sel = per_case[(per_case.organ == "liver") & (per_case.regime == "real") & (per_case.fold == 1)
                   & (per_case.model_organ == "liver")]
    assert sel.set_index("case_id").tumor_dsc.dropna().to_dict() == {c["case_id"]: c["tumor_dsc"] for c in own if c["has_tumor"]}
    assert set(per_case[per_case.model_organ != per_case.organ].source_organ) == {"liver", "pancreas"}
    lesions = pd.read_csv(report["index"].parent / "tables" / "per_lesion.csv")
    assert {"radius_mm", "hit", "seed", "source_organ", "fold"} <= set(lesions.columns)
    assert "tables/per_case.csv" in report["parser"].links and "tables/per_lesion.csv" in report["parser"].links
    mlflow.set_tracking_uri(grid["uri"])
    runs = mlflow.search_runs(experiment_names=["fake_grid"], filter_string="tags.`tumorbench.kind` = 'report'",
                              output_format="list")
    assert len(runs) == 1 and runs[0].info.run_id in report["html"]
    names = {a.path for a in mlflow.MlflowClient(grid["uri"]).list_artifacts(runs[0].info.run_id)}
    assert {"per_case.csv", "per_lesion.csv", "paired.csv"} <= names


def test_detection_counts_pool_summaries(report):
    rows = [r for r in read_csv(report, "fig10_patient") if r["Organ"] == "liver" and r["Regime"] == "real"]
    # real-regime models miss tumors in even-numbered cases and flag a false positive in c5
    tumor_cases = [c for f in CASES.values() for c in f if c not in ("c2", "c5")]
    missed = [c for c in tumor_cases if int(c[1:]) % 2 == 0]
    assert float(rows[0]["TP/(TP+FN), rule call_k"]) == len(tumor_cases) - len(missed)
    assert int(rows[0]["TP/(TP+FN), rule call_n"]) == len(tumor_cases)
    assert (float(rows[0]["TN/(TN+FP)_k"]), int(rows[0]["TN/(TN+FP)_n"])) == (1, 2)
    assert float(rows[0]["sensitivity, rule call"]) == pytest.approx(100 * 2 / 4)
    diff = [r for r in read_csv(report, "fig10_patient") if r["Organ"] == "liver" and r["Regime"] == "difftumor"][0]
    assert (float(diff["TN/(TN+FP)_k"]), float(diff["specificity, rule call"])) == (2.0, 100.0)  # no false positive
    bins = {r["Radius (mm)"]: r for r in read_csv(report, "fig10_size_bins")
            if r["Organ"] == "liver" and r["Regime"] == "difftumor"}
    assert int(bins["0-5"]["hits/n_n"]) + int(bins["5-10"]["hits/n_n"]) == int(bins["all"]["hits/n_n"]) == len(tumor_cases)
    assert float(bins["0-5"]["sensitivity"]) == 100.0 and bins["10-15"]["sensitivity"] == ""
    real_all = [r for r in read_csv(report, "fig10_size_bins") if r["Organ"] == "liver" and r["Regime"] == "real"
                and r["Radius (mm)"] == "all"][0]
    assert float(real_all["sensitivity"]) == 50.0 and float(real_all["sensitivity 95% CI_lo"]) == pytest.approx(15.0039, abs=1e-3)
    demo = {r["Group"]: r for r in read_csv(report, "fig14_demographics") if r["Organ"] == "liver" and r["Regime"] == "real"}
    # tumor-wise by sex: M = c0, c4 (both missed by the real model), F = c1, c3 (both hit); c3 is 69 years old
    assert (demo["sex M"]["hits/n_k"], demo["sex M"]["hits/n_n"], demo["sex F"]["hits/n_k"]) == ("0.0", "2", "2.0")
    assert demo["age 60-69"]["sensitivity"] == "100.0" and demo["sex M"]["tumor DSC"] == "0.0"


def test_hardest_cases_and_figures(report):
    rows = read_csv(report, "fig16_hardest")
    means = [float(r["mean tumor DSC"]) for r in rows]
    assert means == sorted(means)
    assert all("unet·real" in r["missed by"] for r in rows if float(r["min tumor DSC"]) == 0.0)
    out = report["index"].parent
    for img in report["parser"].imgs:
        assert (out / img).is_file(), img
    names = {Path(i).name for i in report["parser"].imgs}
    assert {"qualitative_liver.png", "fig10_liver_unet.png", "curves_liver.png", "fig14_pancreas_unet.png"} <= names


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


def test_latex_captions_and_header_name_every_test(report):
    """Every .tex is a table float with its caption; the paired tables' captions define the tests and
    the Holm families are printed under them (text, not % comments); the header states the plan."""
    from reports import plan

    folder = report["index"].parent / "tables"
    for key in report["tables"]:
        tex = (folder / f"{key}.tex").read_text()
        assert r"\caption{" in tex and tex.index(r"\caption{") < tex.index(r"\begin{tabular}"), key
    paired = (folder / "paired.tex").read_text()
    caption = paired[paired.index(r"\caption{"):paired.index(r"\label")]
    for words in ("Wilcoxon signed-rank", "Pratt's zero method", "exact null distribution", "studentized",
                  "10,000", "Holm within each family organ"):
        assert words in caption, words
    assert "Holm families (" in paired and "% Holm" not in paired
    detection = (folder / "detection_paired.tex").read_text()
    assert "exact McNemar" in detection[:detection.index(r"\label")] and "Holm families (" in detection
    html = report["html"]
    assert html.count("Holm families (") == 2  # under both tables that adjust
    assert plan.PLAN_LINE in html and plan.seeds_sentence(2) in html  # pancreas real has 2 seeds


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
    assert main(["report", "--tracking-uri", uri, "--n-boot", "50", "--out", str(tmp_path / "b")]) == 2
    assert "--n-boot 50: expected at least 1000" in capsys.readouterr().err and not (tmp_path / "b").exists()


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
    assert parser.tables["fig10_size_bins"]["rows"] == []  # no summary.json: nothing to pool, and it says so
    assert "kidney·nnunet·hu·f0: summary.json not found; left out of the pooled tables" in index.read_text()
    assert "kidney·nnunet·hu·f0: tumor_nsd not logged" in index.read_text()
    assert (index.parent / "img" / "curves_kidney.png").is_file()  # curves panel says "no history"
