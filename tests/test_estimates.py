"""`tumorbench run --dry-run` resource estimates (benchmark.estimates)."""
import nibabel as nib
import numpy as np
import pytest

from test_runner_fakes import make_fake_dataset, write_grid
from benchmark.cell import cells_from_grid
from benchmark.estimates import BASE_RAM_GB, HOST_BYTES_PER_VOXEL, IT_PER_S, estimate, print_estimates
from benchmark.grid import load_grid, parse_grid


@pytest.fixture
def grid(tmp_path):
    ds = make_fake_dataset(tmp_path / "liver", "liver")
    for i, case in enumerate(["liver_000", "liver_005"]):  # fold 0's held-out cases
        shape = (40, 30, 20 + 10 * i)
        nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), str(ds / "cases" / case / "ct.nii.gz"))
    path = write_grid(tmp_path / "g.toml", {"liver": ds}, "g", tmp_path / "res", backbones='["unet", "swin_unetr"]',
                      regimes='["real"]')
    path.write_text(path.read_text().replace("epochs = 3", "epochs = 7\niters_per_epoch = 250"))
    grid = load_grid(path)
    return grid, cells_from_grid(grid, {"liver": "x"})


def test_iterations_gpu_hours_and_ram(grid):
    grid, cells = grid
    rows = {r["cell"].backbone: r for r in estimate(grid, cells)}
    assert rows["unet"]["iterations"] == 7 * 250
    assert rows["unet"]["gpu_hours"]["H200"] == pytest.approx(1750 / IT_PER_S[("unet", "tiny", "H200")] / 3600)
    assert rows["swin_unetr"]["gpu_hours"]["H200"] is None  # not measured: no guess
    # the largest held-out case (40x30x30) sets validation's share; this grid runs on the CPU
    assert rows["unet"]["ram_gb"] == pytest.approx(BASE_RAM_GB + HOST_BYTES_PER_VOXEL["cpu"] * 36000 / 1024**3)


def test_printed_table_totals_and_says_what_is_missing(grid, capsys):
    grid, cells = grid
    print_estimates(grid, cells)
    out = capsys.readouterr().out
    total = [line for line in out.splitlines() if line.startswith("total")][0].split()
    assert total[1] == "3500" and float(total[2]) == pytest.approx(1750 / 100 / 3600, abs=0.005)
    assert "no measured it/s for swin_unetr/tiny" in out


def test_epoch_iterations_count_the_regimes_training_cases(tmp_path):
    """One epoch = one pass over the cell's training scans: `real` counts the real-tumor CTs of the
    training folds (all of them with the default final checkpoint, minus the inner validation split
    with checkpoint_selection = "inner_val"), `hu` adds the healthy CTs."""
    from benchmark.data import Dataset
    from benchmark.data.splits import DEFAULT_SEED, add_inner_val

    ds_dir = make_fake_dataset(tmp_path / "liver", "liver", n_cases=30)
    path = write_grid(tmp_path / "g.toml", {"liver": ds_dir}, "g", tmp_path / "res", regimes='["real", "hu"]')
    text = path.read_text().replace("epochs = 3", "epochs = 4\nbatch_size = 2")
    path.write_text(text.replace('preset = "tiny"', 'preset = "paper"'))  # paper: no iters_per_epoch
    ds = Dataset.open(ds_dir)
    fold = add_inner_val(ds.splits, ds.cases, DEFAULT_SEED)[0]
    for selection, fit in (("final", fold["train"]),
                           ("inner_val", [c for c in fold["train"] if c not in set(fold["inner_val"])])):
        grid = load_grid(path) if selection == "final" else parse_grid(
            f'checkpoint_selection = "{selection}"\n' + path.read_text(), path)
        rows = {r["cell"].regime: r["iterations"] for r in estimate(grid, cells_from_grid(grid, {"liver": "x"}))}
        labeled = sum(ds.cases.loc[c, "role"] == "labeled" for c in fit)
        assert rows["real"] == 4 * -(-labeled // 2) and rows["hu"] == 4 * -(-len(fit) // 2), selection
        assert rows["real"] < rows["hu"]
    assert not any("inner_val" in f for f in ds.splits)  # the dry run wrote nothing


def test_missing_dataset_gives_unknowns_not_an_error(tmp_path, capsys):
    path = write_grid(tmp_path / "g.toml", {"liver": tmp_path / "not_yet"}, "g", tmp_path / "res", regimes='["real"]')
    path.write_text(path.read_text().replace('preset = "tiny"', 'preset = "paper"'))
    grid = load_grid(path)
    print_estimates(grid, cells_from_grid(grid, {"liver": "x"}))
    total = [line for line in capsys.readouterr().out.splitlines() if line.startswith("total")][0].split()
    assert total[1] == "n/a"  # epochs x (cases / batch) needs the cases
