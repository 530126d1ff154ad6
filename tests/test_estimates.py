"""`tumorbench run --dry-run` resource estimates (benchmark.estimates)."""
import nibabel as nib
import numpy as np
import pytest

from test_runner_fakes import make_fake_dataset, write_grid
from benchmark.cell import cells_from_grid
from benchmark.estimates import BASE_RAM_GB, HOST_BYTES_PER_VOXEL, IT_PER_S, estimate, print_estimates
from benchmark.grid import load_grid


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
