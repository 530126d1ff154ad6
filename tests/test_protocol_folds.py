"""Issue 27 protocol: generators per fold (provenance in cases_used.json, test-fold leak check),
checkpoints per organ and fold, the final-checkpoint default with inner-split selection as an
option, training-set sizes, per-fold tuning and cross-organ generators with the target's geometry."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from test_protocol import STAGES
from test_runner_fakes import cell_runs, fresh_tracking_uri, make_fake_dataset, write_grid
from benchmark.cell import Cell, cells_from_grid
from benchmark.data import Dataset
from benchmark.errors import InputError
from benchmark.grid import parse_grid
from benchmark.runner import run_grid


def recording_predict(ckpt_path, items, out_dir, **kwargs):
    from test_runner_fakes import fake_predict

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "checkpoint.txt").write_text(Path(ckpt_path).name)
    return fake_predict(ckpt_path, items, out_dir, **kwargs)


def recording_train(config, train_items, val_items, out_dir, **kwargs):
    """Like the real trainer: no best.pt without validation cases."""
    from test_protocol import recording_train as record

    result = record(config, train_items, val_items, out_dir, **kwargs)
    if not val_items:
        (Path(out_dir) / "best.pt").unlink()
    return result


RECORDING = dataclasses.replace(STAGES, predict=recording_predict, train=recording_train)


def _run(tmp_path, extra: str = "", top: str = "", **overrides):
    datasets = {o: make_fake_dataset(tmp_path / "ds" / o, o) for o in ("liver", "pancreas")}
    grid = write_grid(tmp_path / "grid.toml", datasets, "folds", tmp_path / "results",
                      organs='["liver", "pancreas"]', extra="[evaluate]\ncross_organ = true\n" + extra, **overrides)
    if top:
        grid.write_text(top + "\n" + grid.read_text())
    uri = fresh_tracking_uri(tmp_path)
    outcomes = run_grid(grid, tracking_uri=uri, stages=RECORDING, progress=False)
    return {(o.cell.organ, o.cell.regime, o.cell.synth_source): Path(o.results_dir) for o in outcomes}, datasets, uri


def _json(path: Path):
    return json.loads(path.read_text())


def test_final_checkpoint_by_default_and_inner_split_selection_as_an_option(tmp_path):
    cells, datasets, _ = _run(tmp_path / "final")
    for (organ, _, _), folder in cells.items():
        assert (folder / "predictions" / organ / "checkpoint.txt").read_text() == "last.pt"
        assert _json(folder / "train" / "items.json")["val"] == []
    cells, datasets, _ = _run(tmp_path / "inner", top='checkpoint_selection = "inner_val"')
    for (organ, regime, source), folder in cells.items():
        split = Dataset.open(datasets[organ]).splits[0]
        items, used = _json(folder / "train" / "items.json"), _json(folder / "cases_used.json")
        if source == organ:  # selects on the inner split, trains on the rest of the fold
            assert items["val"] == split["inner_val"] and used["selection"] == "inner_val"
            assert not set(items["train"]) & set(split["inner_val"])
            assert (folder / "predictions" / organ / "checkpoint.txt").read_text() == "best.pt"
        else:  # off-diagonal: never selects on the target's real tumors
            assert items["val"] == [] and used["selection"] == "final"
            assert (folder / "predictions" / organ / "checkpoint.txt").read_text() == "last.pt"
            labeled = set(Dataset.open(datasets[organ]).case_ids("labeled"))
            assert not labeled & (set(items["train"]) | set(items["val"]))


def test_training_set_sizes_in_cases_used_and_mlflow(tmp_path):
    cells, datasets, uri = _run(tmp_path)
    runs = cell_runs(uri, "folds")
    for (organ, regime, source), folder in cells.items():
        used = _json(folder / "cases_used.json")
        cases = Dataset.open(datasets[organ]).cases
        assert used["n_train_cases"] == len(used["train"]) == len(Dataset.open(datasets[organ]).splits[0]["train"]
                                                                    if regime != "real" and source == organ
                                                                    else used["train"])
        assert used["n_train_tumor_cases"] == sum(bool(cases.loc[c, "has_tumor"]) for c in used["train"])
        assert used["n_train_healthy_cases"] == sum(cases.loc[c, "role"] == "healthy" for c in used["train"])
        run = runs[runs["tags.tumorbench.results_dir"] == str(folder)].iloc[0]
        assert run["metrics.n_train_cases"] == used["n_train_cases"]
        assert run["metrics.n_train_tumor_cases"] == used["n_train_tumor_cases"]
    liver = Dataset.open(datasets["liver"])
    real = _json(cells[("liver", "real", "liver")] / "cases_used.json")
    assert real["train"] == [c for c in liver.splits[0]["train"] if liver.cases.loc[c, "role"] == "labeled"]


GRID = """
name = "g"
folds = [0, 1]
regimes = ["difftumor"]
[datasets]
liver = "/data/liver"
kidney = "/data/kidney"
[generators.difftumor]
checkpoints = {liver = {0 = "/ckpt/liver_f0", 1 = "/ckpt/liver_f1"}, kidney = "/ckpt/kidney"}
"""


def test_checkpoints_map_per_organ_and_fold():
    cells = cells_from_grid(parse_grid(GRID), {"liver": "a", "kidney": "b"})
    ckpt = {(c.organ, c.fold): c.generator_config()["checkpoint"] for c in cells}
    assert ckpt == {("liver", 0): "/ckpt/liver_f0", ("liver", 1): "/ckpt/liver_f1",
                    ("kidney", 0): "/ckpt/kidney", ("kidney", 1): "/ckpt/kidney"}
    for bad, message in (('{0 = "/ckpt/liver_f0"}', "no checkpoint for folds \\[1\\]"),
                         ('{0 = "/a", 1 = 3}', "checkpoint dir string or a table fold"),
                         ('{0 = "/a", 7 = "/b"}', "keys \\['7'\\]; expected fold numbers"),
                         ("5", "checkpoint dir string or a table")):
        text = GRID.replace('{0 = "/ckpt/liver_f0", 1 = "/ckpt/liver_f1"}', bad)
        with pytest.raises(InputError, match=f"generators.difftumor.checkpoints.liver'.*{message}|{message}"):
            parse_grid(text)


def _checkpoint(folder: Path, organ: str, **meta) -> Path:
    """A checkpoint folder whose JSONs record ``meta`` (the fake stages never load the weights)."""
    folder.mkdir(parents=True)
    for stem in ("autoencoder", f"diffusion_{organ}_early", f"diffusion_{organ}_nonearly"):
        (folder / f"{stem}.pt").write_bytes(stem.encode())
        (folder / f"{stem}.json").write_text(json.dumps(meta))
    return folder


def _difftumor_grid(tmp_path, checkpoint: Path, folds: str = "[0]"):
    ds = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
    grid = write_grid(tmp_path / "grid.toml", {"liver": ds}, "prov", tmp_path / "results", regimes='["difftumor"]',
                      folds=folds, extra=f'[generators.difftumor]\ncheckpoints = {{liver = "{checkpoint}"}}\n')
    return grid, ds


def test_a_generator_trained_on_a_test_case_is_refused_before_any_run(tmp_path):
    ds = make_fake_dataset(tmp_path / "probe", "liver")
    fingerprint, test = Dataset.open(ds).fingerprint(), Dataset.open(ds).splits[0]["val"]
    ckpt = _checkpoint(tmp_path / "ckpt", "liver", dataset="fake-liver", dataset_fingerprint=fingerprint, fold=None,
                       train_case_ids=Dataset.open(ds).case_ids())
    grid, _ = _difftumor_grid(tmp_path, ckpt)
    with pytest.raises(InputError, match=f"has seen its test fold.*autoencoder.pt: trained on 2 test case.*{test[0]}"):
        run_grid(grid, tracking_uri=fresh_tracking_uri(tmp_path), stages=RECORDING, progress=False)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("cell.json"))


def test_one_folds_weights_are_refused_for_another_fold(tmp_path):
    ds = make_fake_dataset(tmp_path / "probe", "liver")
    ckpt = _checkpoint(tmp_path / "ckpt", "liver", dataset="fake-liver", fold=0)
    grid, _ = _difftumor_grid(tmp_path, ckpt, folds="[0, 1]")
    with pytest.raises(InputError, match="trained on fold 0's training cases, which hold test cases of fold 1"):
        run_grid(grid, tracking_uri=fresh_tracking_uri(tmp_path), stages=RECORDING, progress=False)


def test_cases_used_names_the_generators_training_cases_or_published_sha256(tmp_path):
    ds = make_fake_dataset(tmp_path / "probe", "liver")
    dataset = Dataset.open(ds)
    train_ids = dataset.splits[0]["train"]
    ckpt = _checkpoint(tmp_path / "ckpt", "liver", dataset_fingerprint=dataset.fingerprint(), fold=0,
                       train_case_ids=train_ids)
    grid, _ = _difftumor_grid(tmp_path, ckpt)
    outcome, = run_grid(grid, tracking_uri=fresh_tracking_uri(tmp_path), stages=RECORDING, progress=False)
    generator = _json(Path(outcome.results_dir) / "cases_used.json")["generator"]
    assert generator["case_ids"] == sorted(train_ids) and generator["published"] == {}
    published = _checkpoint(tmp_path / "published", "liver")  # JSONs without training records
    for path in published.glob("*.json"):
        path.write_text("{}")
    (tmp_path / "b").mkdir()
    grid, _ = _difftumor_grid(tmp_path / "b", published)
    outcome, = run_grid(grid, tracking_uri=fresh_tracking_uri(tmp_path / "b"), stages=RECORDING, progress=False)
    generator = _json(Path(outcome.results_dir) / "cases_used.json")["generator"]
    sha = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in published.glob("*.pt")}
    assert generator["case_ids"] is None and generator["published"] == sha


def test_tuned_values_apply_to_their_fold_only_and_cross_organ_cells_are_not_tuned(tmp_path):
    text = GRID.replace('regimes = ["difftumor"]', 'regimes = ["hu"]\norgans = ["liver"]') + (
        '[tuned."organ=liver,backbone=unet,regime=hu,fold=1"]\nlr = 0.05\n"generator.size_probs" = [1, 0, 0, 0]\n')
    cells = {c.fold: c for c in cells_from_grid(parse_grid(text), {"liver": "a", "kidney": "b"})}
    assert cells[1].hp()["lr"] == 0.05 and cells[1].generator_config()["size_probs"] == [1, 0, 0, 0]
    assert cells[0].hp()["lr"] != 0.05 and "size_probs" not in cells[0].generator_config()
    with pytest.raises(InputError, match=r"\[tuned.'organ=liver,fold=1'\]: expected a selector"):
        parse_grid(text.replace("organ=liver,backbone=unet,regime=hu,fold=1", "organ=liver,fold=1"))
    from benchmark.tune import tune_cell

    datasets = {o: make_fake_dataset(tmp_path / "ds" / o, o) for o in ("liver", "pancreas")}
    grid = write_grid(tmp_path / "grid.toml", datasets, "t", tmp_path / "results", organs='["liver", "pancreas"]',
                      extra="[evaluate]\ncross_organ = true\n[optuna.space]\nlr = {low = 1e-4, high = 1e-1}\n")
    with pytest.raises(InputError, match="cross-organ cell is not tuned"):
        tune_cell(grid, "organ=liver,backbone=unet,regime=hu,fold=0,synth_source=pancreas", 1,
                  tracking_uri=fresh_tracking_uri(tmp_path), stages=RECORDING, progress=False)


# --- cross-organ generators: target geometry, source weights (real generators) -----------------------
def _task(target: str, source: str, regime: str, checkpoint: str | None = None, **kwargs):
    from benchmark.cell_run import CellTask

    generator = {"name": regime, **({"checkpoint": checkpoint} if checkpoint else {}), **kwargs}
    cell = Cell(organ=target, backbone="unet", fold=0, regime=regime, preset="tiny", seed=0,
                dataset_fingerprint="x", generator=generator, synth_source=source)
    return CellTask(cell=cell, dataset_dir="", eval_datasets=(), results_root="", device="cpu", tracking_uri="",
                    experiment_id="", generator_checkpoint=checkpoint)


def _liver_mask(shape=(48, 44, 40)) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - n / 2) / (0.4 * n)) ** 2 for g, n in zip(grid, shape)) <= 1


def _thin_pancreas(shape=(40, 40, 30)) -> np.ndarray:
    """A diagonal band two voxels wide: nothing is left of any slice after the liver-only 5x5 mm
    erosion (3x3 voxels at 3 mm)."""
    x, y = np.ogrid[:shape[0], :shape[1]]
    band = ((x - y == 0) | (x - y == 1)) & (x > 4) & (x < 34)
    mask = np.zeros(shape, bool)
    mask[:, :, 6:24] = band[:, :, None]
    return mask


@pytest.mark.parametrize("regime", ["hu", "difftumor"])
def test_kidney_to_liver_tumors_stay_in_the_liver(regime):
    from benchmark.cell_pipeline import _generator
    from benchmark.demo_generators import SHIPPED_DIR
    from benchmark.stages import real_stages
    from synthesis import geometry

    task = _task("liver", "kidney", regime, str(SHIPPED_DIR) if regime == "difftumor" else None,
                 size_probs={"medium": 0.5, "large": 0.5})
    generator = _generator(task, real_stages())
    liver, spacing, rng = _liver_mask(), (3.0, 3.0, 3.0), np.random.default_rng(0)
    for _ in range(12):  # kidney geometry leaves half of the medium/large tumors unclipped
        if regime == "hu":
            geo = generator.sample(liver, spacing, rng).geometry
            mask = np.asarray(geometry.render_tumor_mask(liver, spacing, geo), bool)
        else:
            plan = generator._plan(liver, spacing, rng)
            geo, mask = plan.geometry, plan.mask
        assert mask.any() and not (mask & ~liver).any()  # painted inside the liver only
        assert geo.organ == "liver" and geo.clip_to_organ


def test_kidney_to_liver_difftumor_uses_the_kidney_weights():
    from benchmark.cell_pipeline import _generator
    from benchmark.demo_generators import SHIPPED_DIR
    from benchmark.stages import real_stages
    from synthesis.difftumor.checkpoint import load_diffusion

    generator = _generator(_task("liver", "kidney", "difftumor", str(SHIPPED_DIR)), real_stages())
    loaded = generator.pipelines["nonearly"].denoiser.state_dict()
    kidney = load_diffusion(SHIPPED_DIR, "kidney", "nonearly")[0].state_dict()
    liver = load_diffusion(SHIPPED_DIR, "liver", "nonearly")[0].state_dict()
    assert all(np.array_equal(loaded[k].numpy(), kidney[k].numpy()) for k in kidney)
    assert not all(np.array_equal(loaded[k].numpy(), liver[k].numpy()) for k in liver)


@pytest.mark.parametrize("regime", ["hu", "difftumor"])
def test_liver_to_pancreas_places_tumors_without_the_liver_erosion(regime):
    from benchmark.cell_pipeline import _generator
    from benchmark.demo_generators import SHIPPED_DIR
    from benchmark.stages import real_stages

    checkpoint = str(SHIPPED_DIR) if regime == "difftumor" else None
    generator = _generator(_task("pancreas", "liver", regime, checkpoint), real_stages())
    pancreas, rng = _thin_pancreas(), np.random.default_rng(1)
    for _ in range(5):
        if regime == "hu":
            geo = generator.sample(pancreas, (3.0, 3.0, 3.0), rng).geometry
        else:
            geo = generator._plan(pancreas, (3.0, 3.0, 3.0), rng).geometry
        assert all(pancreas[c] for c in geo.centres) and geo.organ == "pancreas"


def test_an_off_diagonal_cells_generator_never_trained_on_the_target(tmp_path):
    """pancreas ← liver: weights recorded as trained on the pancreas dataset are refused."""
    probe = Dataset.open(make_fake_dataset(tmp_path / "probe", "pancreas"))
    ckpt = _checkpoint(tmp_path / "ckpt", "liver", dataset=probe.name, fold=0, train_case_ids=probe.splits[0]["train"])
    datasets = {o: make_fake_dataset(tmp_path / "ds" / o, o) for o in ("liver", "pancreas")}
    grid = write_grid(tmp_path / "grid.toml", datasets, "x", tmp_path / "results", organs='["pancreas", "liver"]',
                      regimes='["difftumor"]', extra=f'[evaluate]\ncross_organ = true\n[generators.difftumor]\n'
                                                     f'checkpoints = {{liver = "{ckpt}", pancreas = "{ckpt}"}}\n')
    with pytest.raises(InputError, match=r"pancreas·unet·difftumor←liver·f0.*trained on real tumors of the target "
                                         r"pancreas \(fake-pancreas\)"):
        run_grid(grid, tracking_uri=fresh_tracking_uri(tmp_path), stages=RECORDING, progress=False,
                 only="organ=pancreas,synth_source=liver")
