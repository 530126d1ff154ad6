"""Issue 14 protocol (fake stages): what each regime trains on, the three-way split, the
cross-organ cells' generator and post-processing masks, seeds and per-regime settings."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from test_runner_fakes import FAKE_STAGES, fake_predict, fake_train, fresh_tracking_uri, make_fake_dataset, write_grid
from benchmark.cell import cells_from_grid
from benchmark.data import Dataset
from benchmark.errors import InputError
from benchmark.grid import parse_grid
from benchmark.runner import run_grid


def recording_train(config, train_items, val_items, out_dir, **kwargs):
    """The fake trainer, plus the case ids it was given (what selection can see)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "items.json").write_text(json.dumps({
        "train": [i["case_id"] for i in train_items], "val": [i["case_id"] for i in val_items],
        "healthy": {i["case_id"]: i["healthy"] for i in train_items}}))
    return fake_train(config, train_items, val_items, out_dir, **kwargs)


def recording_predict(ckpt_path, items, out_dir, *, organ_masks=None, **kwargs):
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "organ_masks.json").write_text(json.dumps(organ_masks))
    return fake_predict(ckpt_path, items, out_dir, **kwargs)


STAGES = dataclasses.replace(FAKE_STAGES, train=recording_train, predict=recording_predict)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protocol")
    datasets = {o: make_fake_dataset(tmp / "ds" / o, o) for o in ("liver", "pancreas")}
    grid = write_grid(tmp / "grid.toml", datasets, "protocol", tmp / "results", organs='["liver", "pancreas"]',
                      extra="[evaluate]\ncross_organ = true\n")
    outcomes = run_grid(grid, tracking_uri=fresh_tracking_uri(tmp), stages=STAGES, progress=False)
    return {(o.cell.organ, o.cell.regime, o.cell.synth_source): (o, Path(o.results_dir)) for o in outcomes}, datasets


def _used(folder: Path) -> tuple[dict, dict]:
    return json.loads((folder / "cases_used.json").read_text()), json.loads((folder / "train" / "items.json").read_text())


def test_regimes_train_on_the_papers_cases(ran):
    cells, datasets = ran
    assert sorted(cells) == [("liver", "hu", "liver"), ("liver", "hu", "pancreas"), ("liver", "real", "liver"),
                             ("pancreas", "hu", "liver"), ("pancreas", "hu", "pancreas"), ("pancreas", "real", "pancreas")]
    assert {o.status for o, _ in cells.values()} == {"finished"}
    for (organ, regime, source), (_, folder) in cells.items():
        used, items = _used(folder)
        roles = set(Dataset.open(datasets[organ]).cases.loc[items["train"], "role"])
        assert items["train"] == used["train"] and items["val"] == used["val"]
        if regime == "real":
            assert roles == {"labeled"} and not any(items["healthy"].values())  # no healthy CT
        elif source == organ:
            assert roles == {"labeled", "healthy"}  # real tumors plus healthy CTs for synthesis
        else:
            assert roles == {"healthy"}  # Table 3 off-diagonal: no real tumors


def test_no_test_fold_case_reaches_training_or_checkpoint_selection(ran):
    cells, datasets = ran
    for (organ, _, _), (_, folder) in cells.items():
        used, items = _used(folder)
        split = Dataset.open(datasets[organ]).splits[0]
        test = set(split["val"])
        assert used["test"][organ] == split["val"]  # reported on the test fold ...
        assert not test & (set(items["train"]) | set(items["val"]))  # ... which nothing else saw
        # default: the final checkpoint of a model trained on all its training folds (no inner split)
        assert items["val"] == [] and used["selection"] == "final"
        roles = set(used["roles"])
        cases = Dataset.open(datasets[organ]).cases
        assert items["train"] == [c for c in split["train"] if cases.loc[c, "role"] in roles]


def test_cross_organ_cell_uses_the_source_generator_and_target_masks(ran):
    cells, datasets = ran
    generator = lambda key: json.loads((cells[key][1] / "train" / "generator.json").read_text())  # noqa: E731
    # pancreas target: the pancreas geometry with the liver generator's weights/parameters
    assert generator(("pancreas", "hu", "liver"))["organ"] == "pancreas"
    assert generator(("pancreas", "hu", "liver"))["model_organ"] == "liver"
    assert generator(("pancreas", "hu", "pancreas"))["organ"] == "pancreas"
    assert "model_organ" not in generator(("pancreas", "hu", "pancreas"))
    real_liver = cells[("liver", "real", "liver")][1]
    masks = json.loads((real_liver / "predictions" / "pancreas" / "organ_masks.json").read_text())
    pancreas = Dataset.open(datasets["pancreas"])
    assert masks == {c: str(pancreas.labels_path(c)) for c in pancreas.splits[0]["val"]}  # the target's organ
    assert not (cells[("pancreas", "hu", "liver")][1] / "cross_organ").exists()  # evaluated on its target only
    assert "_from_liver" in str(cells[("pancreas", "hu", "liver")][1])


def test_mlflow_params_and_artifacts_name_the_source(ran):
    from mlflow import MlflowClient

    cells, _ = ran
    outcome, folder = cells[("pancreas", "hu", "liver")]
    client = MlflowClient(tracking_uri=f"sqlite:///{folder.parents[4] / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(outcome.run_id)
    assert run.data.params["synth_source"] == "liver" and "synth_source" not in run.data.tags
    assert "cases_used.json" in {a.path for a in client.list_artifacts(outcome.run_id)}
    from reports.loader import load_grid

    grid = load_grid(client.tracking_uri, "protocol")  # the report keeps cross-organ cells apart
    cross = {k for k, c in grid.runs.items() if not c.is_main}
    assert cross == {("pancreas", "unet", "hu", 0, 0, "liver"), ("liver", "unet", "hu", 0, 0, "pancreas")}
    assert all(c.is_main for c in grid.cells.values())
    assert grid.runs[("pancreas", "unet", "hu", 0, 0, "liver")].run_id == outcome.run_id
    assert len(grid.cells) == 4 and all(c.source_organ == c.organ for c in grid.cells.values())


def test_tuning_trials_never_see_the_test_fold(tmp_path):
    from benchmark.tune import tune_cell

    ds = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
    grid = write_grid(tmp_path / "grid.toml", {"liver": ds}, "tune", tmp_path / "results",
                      extra="[optuna]\npruner = \"none\"\n[optuna.space]\nlr = {low = 1e-4, high = 1e-1, log = true}\n")
    result = tune_cell(grid, "organ=liver,backbone=unet,regime=hu,fold=0", 2, tracking_uri=fresh_tracking_uri(tmp_path),
                       stages=STAGES, progress=False)
    assert result.n_complete == 2
    split = Dataset.open(ds).splits[0]
    seen = [json.loads(p.read_text()) for p in (result.folder / "trials").rglob("items.json")]
    assert len(seen) == 2
    for items in seen:
        assert items["val"] == split["inner_val"] and not set(split["val"]) & (set(items["val"]) | set(items["train"]))


GRID = """
name = "g"
seeds = [0, 1]
regimes = ["real", "hu", "difftumor"]
organs = ["liver", "kidney"]
[datasets]
liver = "/data/liver"
kidney = "/data/kidney"
[train]
epochs = 4
[train.real]
epochs = 6
[evaluate]
cross_organ = true
[generators.difftumor]
checkpoints = {liver = "/ckpt/liver", kidney = "/ckpt/kidney"}
"""


def test_seeds_axis_per_regime_settings_and_cross_organ_expansion():
    cells = cells_from_grid(parse_grid(GRID), {"liver": "a", "kidney": "b"})
    main = [c for c in cells if not c.cross_organ]
    cross = [c for c in cells if c.cross_organ]
    assert len(main) == 2 * 3 * 2 and len(cross) == 2 * 2 * 2  # organs x regimes x seeds; targets x synth x seeds
    assert len({c.hash for c in cells}) == len(cells) and {c.seed for c in cells} == {0, 1}
    assert {c.hp()["epochs"] for c in cells if c.regime == "real"} == {6}
    assert {c.hp()["epochs"] for c in cells if c.regime != "real"} == {4}
    kidney_from_liver = next(c for c in cross if c.organ == "kidney" and c.regime == "difftumor")
    assert kidney_from_liver.synth_source == "liver"
    assert kidney_from_liver.generator_config()["checkpoint"] == "/ckpt/liver"
    assert kidney_from_liver.params()["synth_source"] == "liver"
    same = dataclasses.replace(kidney_from_liver, synth_source="kidney")
    assert same.hash != kidney_from_liver.hash and same.relative_dir().parent.name == "difftumor"
    with pytest.raises(InputError, match="'seed' or 'seeds'"):
        parse_grid(GRID.replace("seeds = [0, 1]", "seed = 0\nseeds = [1]"))
    with pytest.raises(InputError, match="train.real.momentum"):
        parse_grid(GRID.replace("epochs = 6", "momentum = 0.9"))
    with pytest.raises(InputError, match="real-regime cell has no synth_source"):
        dataclasses.replace(main[0], synth_source="kidney")
