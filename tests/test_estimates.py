"""`tumorbench run --dry-run` resource estimates (benchmark.estimates)."""
import json
import math

import nibabel as nib
import numpy as np
import pytest

from test_runner_fakes import make_fake_dataset, write_grid
from benchmark.cell import cells_from_grid
from benchmark.estimates import (BASE_RAM_GB, HOST_BYTES_PER_VOXEL, IT_PER_S, PAPER_SOURCE, estimate, print_estimates,
                                 read_data_path_figures)
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
    assert "n/a GPU-h H200: 1 of 2 cells (swin_unetr/tiny): throughput not measured" in out


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


def test_missing_dataset_counts_the_papers_official_lists(tmp_path, capsys):
    """Before the import, a cell of an organ the paper ran trains (for the estimate) on the paper's
    fold-0 list sizes, marked as such; an inner-val cell has no paper count (the paper had no inner
    split) and stays n/a, counted in the notes."""
    from reports.training_sizes import PAPER_TRAIN_CASES

    path = write_grid(tmp_path / "g.toml", {"liver": tmp_path / "not_yet"}, "g", tmp_path / "res", regimes='["real", "hu"]')
    path.write_text(path.read_text().replace('preset = "tiny"', 'preset = "paper"'))
    tumor, healthy = PAPER_TRAIN_CASES["liver"]
    rows = {r["cell"].regime: r for r in estimate(load_grid(path), cells_from_grid(load_grid(path), {"liver": "x"}))}
    assert rows["real"]["iterations"] == 3 * -(-tumor // 2) and rows["real"]["n_source"] == PAPER_SOURCE
    assert rows["hu"]["iterations"] == 3 * -(-(tumor + healthy) // 2)
    grid = parse_grid('checkpoint_selection = "inner_val"\n' + path.read_text(), path)
    print_estimates(grid, cells_from_grid(grid, {"liver": "x"}))
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("total")][0].split()[1] == "n/a"
    assert "n/a iterations: 2 of 2 cells" in out


def _paper_dry_run(tmp_path, monkeypatch, figures=None) -> str:
    """`tumorbench run grids/paper.toml --dry-run` from an empty folder (no dataset imported)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "grids" / "paper.toml", tmp_path / "paper.toml")
    if figures is not None:
        (tmp_path / "figures.json").write_text(json.dumps(figures))
        monkeypatch.setattr("benchmark.estimates.FIGURES_PATH", tmp_path / "figures.json")
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    from benchmark.cli import main

    assert main(["run", "paper.toml", "--dry-run"]) == 0
    assert sorted(p for p in tmp_path.rglob("*")) == before  # a dry run writes nothing
    return before


def test_paper_grid_dry_run_prices_unet_cells_and_says_why_the_others_are_na(tmp_path, monkeypatch, capsys):
    _paper_dry_run(tmp_path, monkeypatch)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "·f" in line and len(line.split()) == 5}
    rate = IT_PER_S[("unet", "paper", "H200")]
    # liver real: 3000 epochs x ceil(95 / 2); hu: 2000 x ceil(211 / 2); cross-organ: 2000 x ceil(116 / 2)
    for cell, n, iterations in (("liver·unet·real·f3", "95*", 3000 * 48), ("liver·unet·hu·f0", "211*", 2000 * 106),
                                ("liver·unet·difftumor←kidney·f4", "116*", 2000 * 58)):
        assert rows[cell][:2] == [n, str(iterations)], cell
        assert float(rows[cell][2]) == pytest.approx(iterations / rate / 3600, abs=0.005), cell
    for cell in ("pancreas·nnunet·hu·f0", "kidney·swin_unetr·real·f2"):
        assert rows[cell][2] == "n/a" and rows[cell][1] != "n/a", cell
    assert len(rows) == 315
    assert "n/a GPU-h H200: 210 of 315 cells (nnunet/paper, swin_unetr/paper): throughput not measured" in out
    assert "the total counts the 105 measured cells only" in out
    assert "paper's official fold-0 lists" in out and "for 315 of 315 cells" in out
    assert "no CPU crops/s for regime 'hu'" in out  # no data-path table yet


def test_data_path_workers_from_the_perf_table(tmp_path, monkeypatch, capsys):
    """workers per GPU = ceil(it/s x batch / CPU crops/s per core) of the cell's regime; a regime the
    table lacks is n/a with its reason."""
    fig = {"crop": [96, 96, 96], "cpu": "test cpu", "date": "2026-12-06", "command": "tumorbench perf data"}
    _paper_dry_run(tmp_path, monkeypatch, {"data_path": {"hu": {**fig, "crops_per_s_per_core": 10.0},
                                                         "real": {**fig, "crops_per_s_per_core": 84.0}},
                                           "train": {}})
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    need = IT_PER_S[("unet", "paper", "H200")] * 2
    assert f"unet/paper {math.ceil(need / 10.0)} ({need:g} crops/s / 10 per core on test cpu" in lines["hu"]
    assert f"unet/paper {math.ceil(need / 84.0)} (" in lines["real"]
    assert "unet/paper n/a (no CPU crops/s for regime 'difftumor'" in lines["difftumor"]
    assert "nnunet/paper, swin_unetr/paper n/a (no measured it/s on H200)" in lines["hu"]


@pytest.mark.parametrize("text, field", [("[1]", "'data_path' section"), ('{"data_path": []}', "'data_path'"),
                                         ('{"data_path": {"hu": {"crops_per_s_per_core": 0}}}',
                                          "data_path.hu.crops_per_s_per_core")])
def test_a_malformed_perf_table_is_one_clear_error(tmp_path, text, field):
    from benchmark.errors import InputError

    (tmp_path / "f.json").write_text(text)
    with pytest.raises(InputError, match=f"f.json: .*{field}"):
        read_data_path_figures(tmp_path / "f.json")
    assert read_data_path_figures(tmp_path / "absent.json") == {}


def test_a_rate_measured_at_another_crop_is_not_used():
    from benchmark.estimates import workers_per_gpu

    fig = {"crops_per_s_per_core": 20.0, "crop": [96, 96, 96]}
    assert workers_per_gpu(42.0, 2, fig, [96, 96, 96])[0] == 5
    n, why = workers_per_gpu(42.0, 2, fig, [48, 48, 48])
    assert n is None and "measured at crop [96, 96, 96], the cell crops [48, 48, 48]" in why
