"""`--set KEY=VALUE` on `tumorbench run` / `tune`: set over the parsed TOML before the file's own
checks (same errors), folded into the cells (hash, trainer config) and into the logged grid.toml."""
from __future__ import annotations

import tomllib

import pytest

from benchmark.cell import cells_from_grid
from benchmark.cli import main
from benchmark.errors import InputError
from benchmark.grid import load_grid, parse_grid
from benchmark.grid_schema import apply_overrides, parse_override

GRID = """
name = "g"
organs = ["liver"]
regimes = ["real", "hu"]
results_dir = "{results}"
[datasets]
liver = "{data}"
[train]
epochs = 2
crop_size = [48, 48, 32]
"""
FP = {"liver": "fp"}


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(GRID.format(results=tmp_path / "results", data=tmp_path / "no_data_yet"))
    return path


def _hashes(grid) -> dict[str, str]:
    return {c.run_name: c.hash for c in cells_from_grid(grid, FP)}


def test_values_are_toml_values_and_keys_dotted():
    assert parse_override("train.crop_size=[64,64,32]") == (["train", "crop_size"], [64, 64, 32])
    assert parse_override("evaluate.overlap=0.25") == (["evaluate", "overlap"], 0.25)
    assert parse_override("evaluate.cross_organ=true") == (["evaluate", "cross_organ"], True)
    assert parse_override('device="cuda"') == (["device"], "cuda")
    assert parse_override("device=cuda") == (["device"], "cuda")  # a bare word is a string
    assert parse_override("generators.hu.size_probs={tiny = 1.0}") == (["generators", "hu", "size_probs"],
                                                                      {"tiny": 1.0})
    key = 'tuned."organ=liver,backbone=unet,regime=hu,fold=0".lr=0.002'  # '=' inside a quoted key
    assert parse_override(key) == (["tuned", "organ=liver,backbone=unet,regime=hu,fold=0", "lr"], 0.002)
    raw = {"train": {"epochs": 2}}
    assert apply_overrides(raw, ["train.epochs=3", "train.epochs=4", "evaluate.overlap=0.1"]) == \
        {"train": {"epochs": 4}, "evaluate": {"overlap": 0.1}}  # in order, later wins; tables created
    assert raw == {"train": {"epochs": 2}}  # the parsed file is not changed


@pytest.mark.parametrize(("item", "message"), [
    ("epochs", "--set epochs: expected KEY=VALUE"),
    ("train.epochs=[1,", "--set train.epochs=[1,: '[1,' is not a TOML value"),
    ("name.x=1", "--set name.x=1: 'name' is 'g' in the grid, not a table"),
])
def test_malformed_items_name_the_item(item, message):
    with pytest.raises(InputError) as exc:
        parse_grid(GRID.format(results="r", data="d"), overrides=[item])
    assert str(exc.value).startswith(message)


def test_a_training_override_changes_the_hash_and_reaches_the_trainer_config(grid_file):
    from benchmark.stages import make_train_config

    plain = load_grid(grid_file)
    grid = load_grid(grid_file, ["train.epochs=5", "train.crop_size=[64,64,32]", "evaluate.overlap=0.25"])
    assert grid.overrides == ("train.epochs=5", "train.crop_size=[64,64,32]", "evaluate.overlap=0.25")
    before, after = _hashes(plain), _hashes(grid)
    assert before.keys() == after.keys() and all(before[k] != after[k] for k in before)
    assert _hashes(load_grid(grid_file, ["train.epochs=2"])) == before  # the file's own value: same cells
    assert _hashes(load_grid(grid_file, ["train.hu.epochs=7"]))["liver·unet·real·f0"] == before["liver·unet·real·f0"]
    cell = cells_from_grid(grid, FP)[0]
    config = make_train_config(cell.backbone, cell.preset, cell.seed, cell.hp())
    assert config.epochs == 5 and tuple(config.crop_size) == (64, 64, 32)
    assert grid.evaluate["overlap"] == 0.25 and plain.evaluate["overlap"] == 0.5


def test_logged_grid_toml_is_the_grid_as_run(grid_file):
    grid = load_grid(grid_file, ["train.epochs=5", "folds=[1, 2]", "device=cuda"])
    assert "#   --set train.epochs=5" in grid.source and str(grid_file) in grid.source.splitlines()[0]
    raw = tomllib.loads(grid.source)  # what the runner logs as grid.toml, and the report parses
    assert raw["train"]["epochs"] == 5 and raw["folds"] == [1, 2] and raw["device"] == "cuda"
    again = parse_grid(grid.source)
    assert _hashes(again) == _hashes(grid) and again.folds == (1, 2) and again.device == "cuda"
    assert load_grid(grid_file).source == grid_file.read_text()  # without --set: the file itself


@pytest.mark.parametrize(("item", "expected"), [
    ("train.epoch=5", "unknown field 'train.epoch'; expected one of ["),
    ("trian.epochs=5", "unknown field 'trian'; expected one of ["),
    ('train.epochs="5"', "field 'train.epochs' must be an integer, got '5'"),
    ("evaluate.overlap=2", "field 'evaluate.overlap' has 2; expected a value in [0, 1)"),
    ("evaluate.cross_organ=yes", "field 'evaluate.cross_organ' has 'yes'; expected true or false"),
    ("train=5", "[train] must be a table, got 5"),
])
def test_bad_key_or_type_is_the_files_error_exit_2_nothing_written(grid_file, tmp_path, capsys, monkeypatch,
                                                                   item, expected):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["run", str(grid_file), "--set", item]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tumorbench: error: {grid_file} with --set {item}: {expected}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results/, no mlruns/


def test_tune_takes_set_too(grid_file, capsys):
    assert main(["tune", str(grid_file), "--cell", "organ=liver,backbone=unet,regime=hu,fold=0",
                 "--set", "train.epoch=5"]) == 2
    assert "with --set train.epoch=5: unknown field 'train.epoch'" in capsys.readouterr().err


def test_dry_run_lists_the_overridden_cells(grid_file, capsys):
    """The cell table of `run --dry-run --set` carries the hashes of the overridden grid (its folders)."""
    def listed(*extra):
        assert main(["run", str(grid_file), "--dry-run", "--no-progress", *extra]) == 0
        return {line.split()[2]: line.split()[6] for line in capsys.readouterr().out.splitlines()
                if line.startswith("liver ")}  # regime -> hash

    missing = {"liver": "missing"}  # dry run before the dataset exists
    plain, overridden = listed(), listed("--set", "train.epochs=5")
    assert plain == {c.regime: c.hash for c in cells_from_grid(load_grid(grid_file), missing)}
    assert overridden == {c.regime: c.hash for c in cells_from_grid(load_grid(grid_file, ["train.epochs=5"]), missing)}
    assert set(plain) == {"real", "hu"} and all(plain[r] != overridden[r] for r in plain)


def test_a_run_logs_the_overridden_params_and_grid_toml(tmp_path):
    """Through the runner (fake stages, real MLflow store): the cell's params hold the override and
    the grid run's grid.toml artifact is the grid as run (the report reads its axes)."""
    import mlflow

    from test_runner_fakes import FAKE_STAGES, cell_runs, fresh_tracking_uri, make_fake_dataset, write_grid
    from benchmark.runner import run_grid

    data = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
    path = write_grid(tmp_path / "grid.toml", {"liver": data}, "exp", tmp_path / "results")
    uri = fresh_tracking_uri(tmp_path)
    grid = load_grid(path, ["train.epochs=2", 'regimes=["real"]'])
    assert [o.status for o in run_grid(grid, tracking_uri=uri, stages=FAKE_STAGES, progress=False)] == ["finished"]
    runs = cell_runs(uri, "exp")
    assert len(runs) == 1 and runs["params.epochs"][0] == "2" and runs["params.regime"][0] == "real"
    parent = cell_runs(uri, "exp", kind="grid")["run_id"][0]
    logged = mlflow.MlflowClient(uri).download_artifacts(parent, "grid.toml", str(tmp_path / "got"))
    text = open(logged).read()
    assert "#   --set train.epochs=2" in text and tomllib.loads(text)["regimes"] == ["real"]
