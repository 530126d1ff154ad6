"""Grid TOML: validation errors name the field; expansion counts, cross-organ targets, --only."""
from __future__ import annotations

import pytest

from test_runner_fakes import make_fake_dataset
from benchmark.cell import cells_from_grid, parse_only, select
from benchmark.errors import InputError
from benchmark.grid import load_grid, parse_grid

BASE = """
name = "g"
organs = ["liver", "kidney"]
backbones = ["unet", "swin_unetr"]
folds = [0, 1, 2]
regimes = ["real", "hu", "difftumor"]
[datasets]
liver = "/data/liver"
kidney = "/data/kidney"
pancreas = "/data/pancreas"
[generators.difftumor]
checkpoints = {liver = "/ckpt/liver", kidney = "/ckpt/kidney"}
"""
FP = {"liver": "a", "kidney": "b", "pancreas": "c"}


def test_expansion_counts_and_cross_organ_targets():
    grid = parse_grid(BASE)
    cells = cells_from_grid(grid, FP)
    assert len(cells) == 2 * 2 * 3 * 3
    assert len({c.hash for c in cells}) == len(cells)
    assert grid.eval_organs("liver") == ("liver",)  # cross_organ is off by default
    cross = parse_grid(BASE + "[evaluate]\ncross_organ = true\n")
    assert cross.eval_organs("liver") == ("liver", "kidney", "pancreas")  # own organ first
    assert cross.eval_organs("kidney") == ("kidney", "liver", "pancreas")
    assert cross.eval_organs("kidney", "hu") == ("kidney",)  # synthetic rows: own cross-organ cells
    real = [c for c in cells if c.regime == "real"]
    assert all(c.generator == () for c in real)
    diff = next(c for c in cells if c.regime == "difftumor" and c.organ == "kidney")
    assert diff.generator_config() == {"name": "difftumor", "checkpoint": "/ckpt/kidney"}
    assert {c.dataset_fingerprint for c in cells if c.organ == "kidney"} == {"b"}
    assert dict(cells[0].hyperparameters)["epochs"] == 2  # tiny preset default


def test_only_filter():
    cells = cells_from_grid(parse_grid(BASE), FP)
    picked = select(cells, parse_only("organ=liver,regime=hu"))
    assert len(picked) == 2 * 3 and {(c.organ, c.regime) for c in picked} == {("liver", "hu")}
    assert len(select(cells, parse_only("regime=hu|real,fold=2,fold=0"))) == 2 * 2 * 2 * 2
    with pytest.raises(InputError, match="--only: 'colour=red'"):
        parse_only("colour=red")


@pytest.mark.parametrize("patch, field", [
    (("name = \"g\"", "name = \"\""), "'name'"),
    (("regimes = [\"real\", \"hu\", \"difftumor\"]", "regimes = [\"gan\"]"), "'regimes'"),
    (("folds = [0, 1, 2]", "folds = [7]"), "'folds'"),
    (("backbones = [\"unet\", \"swin_unetr\"]", "backbones = [\"resnet\"]"), "'backbones'"),
    (("organs = [\"liver\", \"kidney\"]", "organs = [\"liver\", \"lung\"]"), "'organs'"),
    (("[datasets]", "colour = 1\n[datasets]"), "'colour'"),
    (("checkpoints = {liver", "checkpoints = 3\n#"), "generators.difftumor.checkpoints"),
])
def test_validation_names_the_field(patch, field):
    with pytest.raises(InputError, match=field):
        parse_grid(BASE.replace(*patch))


@pytest.mark.parametrize(("text", "field"), [
    (BASE + "[train]\ncrop_size = [8, 8]\n", "train.crop_size"),
    (BASE + "[train]\nsynth_prob = 1.5\n", "train.synth_prob"),
    (BASE + "[train]\nmomentum = 0.9\n", "train.momentum"),
    (BASE + "[optuna.space]\nlr = {low = 0.1, high = 0.01}\n", "optuna.space.lr"),
    (BASE + "[optuna.space]\ncolour = {choices = [1]}\n", "optuna.space.colour"),
    (BASE + "[optuna]\npruner = \"asha\"\n", "optuna.pruner"),
    ("name = ", "not valid TOML"),
])
def test_train_and_optuna_errors_name_the_field(text, field):
    with pytest.raises(InputError, match=field):
        parse_grid(text)


def test_missing_grid_file_and_a_valid_optuna_space(tmp_path):
    with pytest.raises(InputError, match="grid file not found"):
        load_grid(tmp_path / "nope.toml")
    grid = parse_grid(BASE + "[optuna.space]\nlr = {low = 1e-4, high = 1e-2, log = true}\n"
                      "batch_size = {choices = [1, 2]}\n")
    assert grid.optuna["space"]["lr"] == {"low": 1e-4, "high": 1e-2, "log": True}


def test_missing_dataset_is_reported_by_run(tmp_path, capsys):
    from benchmark.runner import run_grid

    make_fake_dataset(tmp_path / "liver", "liver")
    grid = tmp_path / "g.toml"
    grid.write_text(f'name = "g"\n[datasets]\nliver = "{tmp_path / "liver"}"\npancreas = "{tmp_path / "nope"}"\n')
    assert run_grid(grid, dry_run=True, progress=False) == []  # --dry-run works before the data exist
    out, err = capsys.readouterr()
    assert "warning: dataset 'pancreas' not available yet" in err and "nope" in err and "2 cells" in out
    with pytest.raises(InputError, match="nope"):
        run_grid(grid, progress=False)


def test_example_grids_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "grids"
    for path in sorted(root.glob("*.toml")):
        grid = load_grid(path)
        assert cells_from_grid(grid, {o: "x" for o in grid.datasets}), path


def test_grid_backbones_are_the_models_registry():
    """The grid's allowed backbones (checked at load, without torch) are exactly models.backbones'."""
    from benchmark.grid import BACKBONES
    from models.backbones import BACKBONES as REGISTRY

    assert set(BACKBONES) == set(REGISTRY) and len(BACKBONES) == len(REGISTRY)
