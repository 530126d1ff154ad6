"""The grid report's realism section: tied to the grid's experiment and data, Table 1 + panels."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from reports.loader import load_grid
from reports.realism_report import realism_section

SCORES = ("organ,generator,n_real,n_other,frechet,frechet_p,frechet_pca,frechet_pca_p,c2st_auc,c2st_auc_p,"
          "n_matched,frechet_pca_matched,frechet_pca_matched_sd,frechet_pca_floor,frechet_pca_floor_sd\n"
          "liver,hu,{n},{n},50.0,0.01,{marker},0.02,0.9,0.005,19,30.0,2.0,18.0,1.5\n")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    from test_reader_study_groups import _study

    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    grid_exp = client.create_experiment("grid", artifact_location=(tmp_path / "a_grid").as_uri())
    other_exp = client.create_experiment("other", artifact_location=(tmp_path / "a_other").as_uri())
    cell = client.create_run(grid_exp, tags={"tumorbench.kind": "cell", "organ": "liver", "backbone": "unet",
                                             "regime": "real", "fold": "0"})
    client.log_param(cell.info.run_id, "dataset_fingerprint", "fp-liver")
    client.set_terminated(cell.info.run_id, "FINISHED")
    ids = {}
    # oldest first: the grid's own run, a newer one on other data, the newest in another experiment
    for name, exp, prints, marker in (("own", grid_exp, {"liver": "fp-liver", "kidney": "fp-k"}, 11.1111),
                                      ("other_data", grid_exp, {"liver": "fp-changed"}, 22.2222),
                                      ("other_experiment", other_exp, {"liver": "fp-liver"}, 33.3333)):
        run = client.create_run(exp, tags={"tumorbench.kind": "realism", "dataset_fingerprints": json.dumps(prints)})
        folder = tmp_path / name
        folder.mkdir()
        (folder / "realism_scores.csv").write_text(SCORES.format(n=38, marker=marker))
        client.log_artifact(run.info.run_id, str(folder / "realism_scores.csv"))
        client.set_terminated(run.info.run_id, "FINISHED")
        ids[name] = run.info.run_id
    study = tmp_path / "study"
    study.mkdir()
    _study(study)
    run = client.create_run(grid_exp, tags={"tumorbench.kind": "reader_study", "study_id": "s1", "task": "real-vs-synthetic",
                                            "dataset_fingerprints": json.dumps({"liver": "fp-liver"})})
    for name in ("scores.csv", "agreement.csv", "scores.png", "scores_by_group.png", "cases_by_source.png"):
        client.log_artifact(run.info.run_id, str(study / name))
    client.set_terminated(run.info.run_id, "FINISHED")
    ids["reader"] = run.info.run_id
    return {"uri": uri, "ids": ids, "tmp": tmp_path}


def test_section_shows_only_this_grids_runs_with_table1_and_panels(store):
    grid = load_grid(store["uri"], "grid")
    section = realism_section(grid, None, store["tmp"] / "out")
    html = section.html + section.intro + " ".join(f.caption for f in section.figures)
    assert store["ids"]["own"] in html and "11.111 (p 0.020)" in html
    assert "22.222" not in html and "33.333" not in html  # other data / other experiment
    assert store["ids"]["reader"] in html and "tumorbench-report-" not in html and "/tmp/" not in html
    table1 = pd.read_csv(store["tmp"] / "out/realism/table1_readers.csv")
    assert list(table1.reader) == ["alice", "bob", "pooled"]
    assert table1.filter(like="accuracy").iloc[0, 0].startswith("0.75 [")  # alice 6/8
    groups = pd.read_csv(store["tmp"] / "out/realism/table1_groups.csv")
    assert {"generator: hu", "organ: kidney", "size_bin: 5-10"} <= set(groups.level)
    titles = [f.title for f in section.figures]
    assert any("Fig 8" in t for t in titles) and any("Fig 9" in t for t in titles)
    for figure in section.figures:
        assert figure.path.is_file() and figure.path.parent == store["tmp"] / "out/realism"


def test_no_section_without_runs_of_this_grid(store, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store["uri"])
    exp = client.create_experiment("bare", artifact_location=(tmp_path / "a_bare").as_uri())
    cell = client.create_run(exp, tags={"tumorbench.kind": "cell", "organ": "liver", "backbone": "unet",
                                        "regime": "real", "fold": "0"})
    client.set_terminated(cell.info.run_id, "FINISHED")
    assert realism_section(load_grid(store["uri"], "bare"), None, tmp_path / "out") is None
