"""End to end: `tumorbench radiomics` and `tumorbench reader-study make|score` on toy datasets."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark.cli import main
from test_realism_helpers import toy_generator, write_dataset  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return [write_dataset(root / organ, organ, n_labeled=4, n_healthy=2, seed=i)
            for i, organ in enumerate(("liver", "kidney"))]


def test_radiomics_command_writes_scores_tables_and_plots(datasets, tmp_path, toy_generator, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    out = tmp_path / "realism"
    code = main(["radiomics", *map(str, datasets), "--generators", "sphere", "--n", "5", "--out", str(out),
                 "--resample-mm", "2", "--embedding", "pca", "--experiment", "realism-test",
                 "--permutations", "9", "--subsamples", "3"])
    assert code == 0
    features = pd.read_csv(out / "features.csv")
    assert len(features) == 20 and (features.status == "ok").all()
    assert sum(c.startswith("original_") for c in features.columns) == 91
    scores = pd.read_csv(out / "realism_scores.csv")
    assert set(zip(scores.organ, scores.generator)) == {(o, "sphere") for o in ("kidney", "liver")}
    assert scores.c2st_auc.between(0, 1).all() and (scores.frechet >= 0).all()
    assert scores.c2st_auc_p.between(0.1, 1).all() and (scores.n_matched == 2).all()  # p >= 1/10 with 9 permutations
    assert {"frechet_pca_floor", "frechet_pca_floor_sd", "c2st_auc_matched"} <= set(scores.columns)
    top = pd.read_csv(out / "effect_sizes_top.csv")
    assert len(top) == 2 * 8 and top.groupby("organ").abs_smd.is_monotonic_decreasing.all()
    for name in ("embedding.png", "cross_organ_embedding.png", "distributions_liver_sphere.png",
                 "extractor_config.json", "cross_organ.csv", "tumors.csv", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_features"] <= 91 and len(summary["cross_organ"]) == 4  # (early, non-early) x (all, size-matched)
    assert set(summary["dataset_fingerprints"]) == {"liver", "kidney"}
    # the MLflow run is tagged for the reports helper and carries the tables
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # another test may have set another one
    runs = mlflow.search_runs(experiment_names=["realism-test"], output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["tumorbench.kind"] == "realism"
    assert {"c2st_auc_liver_sphere", "c2st_auc_p_liver_sphere", "frechet_pca_floor_liver_sphere"} <= set(runs[0].data.metrics)
    assert json.loads(runs[0].data.tags["tumorbench.dataset_fingerprints"]) == summary["dataset_fingerprints"]
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"realism_scores.csv", "embedding.png", "effect_sizes_top.csv", "full"} <= artifacts
    assert "features.csv" not in artifacts  # big tables go gzipped under full/
    full = client.download_artifacts(runs[0].info.run_id, "full/features.csv.gz", str(tmp_path / "dl"))
    pd.testing.assert_frame_equal(pd.read_csv(full), features)


def test_reader_study_make_and_score_round_trip(datasets, tmp_path, toy_generator, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    out = tmp_path / "study"
    assert main(["reader-study", "make", str(datasets[0]), "--generators", "sphere", "--n-real", "3",
                 "--n-synthetic", "4", "--seed", "2", "--out", str(out)]) == 0
    key = pd.read_csv(out / "key.csv")
    assert sorted(key.truth) == ["real"] * 3 + ["synthetic"] * 4
    assert sorted(p.stem for p in (out / "reader/cases").glob("*.js")) == sorted(key.case_id)
    assert (out / "gallery.html").read_text().count("<img") >= 6
    answers = tmp_path / "answers.csv"
    answers.write_text("reader,case_id,answer,confidence\n" +
                       "".join(f"me,{c},synthetic,2\n" for c in key.case_id))  # always says synthetic
    assert main(["reader-study", "score", str(out), "--answers", str(answers), "--experiment", "grid-x"]) == 0
    table = pd.read_csv(out / "scores.csv").query("group == 'all'").set_index("metric")
    assert table.loc["accuracy", "value"] == pytest.approx(4 / 7)
    assert table.loc["sensitivity", "value"] == 1.0 and table.loc["specificity", "value"] == 0.0
    # logged for the grid report: kind reader_study, the study id and the datasets' fingerprints
    import mlflow

    study = json.loads((out / "study.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["grid-x"], output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["tumorbench.kind"] == "reader_study"
    assert runs[0].data.tags["tumorbench.study_id"] == study["study_id"]
    assert json.loads(runs[0].data.tags["tumorbench.dataset_fingerprints"]) == study["dataset_fingerprints"] != {}


def test_organ_task_uses_early_real_tumors_only(datasets, tmp_path):
    out = tmp_path / "organ"
    assert main(["reader-study", "make", *map(str, datasets), "--task", "organ", "--n-real", "3",
                 "--out", str(out)]) == 0
    key = pd.read_csv(out / "key.csv")
    assert sorted(key.truth) == ["kidney"] * 3 + ["liver"] * 3
    assert (key.source == "real").all() and (key.radius_mm <= 10).all()
    page = (out / "reader/index.html").read_text()
    assert '"choices": ["liver", "pancreas", "kidney"]' in page


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["radiomics", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["reader-study", "score", str(tmp_path), "--answers", "x.csv"]) == 2
    assert "key.csv" in capsys.readouterr().err


def test_synthetic_cases_are_spread_over_generators(datasets, tmp_path, toy_generator):
    out = tmp_path / "two"
    assert main(["reader-study", "make", str(datasets[0]), "--generators", "sphere,sphere2", "--n-real", "2",
                 "--n-synthetic", "5", "--out", str(out)]) == 0
    key = pd.read_csv(out / "key.csv")
    assert key.source.value_counts().to_dict() == {"sphere": 3, "sphere2": 2, "real": 2}
    assert set(key.truth[key.source != "real"]) == {"synthetic"}
