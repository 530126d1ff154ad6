"""Table 3 on a phantom, through the real stack (trainer, Hu generator, inference, metrics,
MLflow, report loader): a liver model trained on the liver's healthy CTs with the *pancreas*
Hu generator finds liver tumors (synthetic off-diagonal > 0), while the pancreas model trained
on real pancreas tumors finds next to none in the liver (real off-diagonal ~ 0), as in the
paper's Table 3. Two cells only (the two off-diagonal entries), a few CPU minutes: slow."""
from __future__ import annotations

import pytest

from test_runner_fakes import fresh_tracking_uri, write_grid

pytestmark = pytest.mark.slow
SHAPE = (64, 56, 40)  # 2 mm phantom, as tests/test_runner_e2e.py


def _grid(tmp_path):
    from benchmark.data import generate_phantom_dataset

    # liver: 30 cases, seed 2 -> 5 early tumors in the fold-0 test cases (Table 3 counts early ones)
    phantoms = {organ: generate_phantom_dataset(tmp_path / organ, organ, n_cases=n, seed=2, shape=SHAPE,
                                                tumor_fraction=0.8, progress=False)[0]
                for organ, n in (("liver", 30), ("pancreas", 16))}
    grid = write_grid(tmp_path / "grid.toml", phantoms, "xorgan", tmp_path / "results",
                      organs='["liver", "pancreas"]')
    train = ("epochs = 8\niters_per_epoch = 12\nval_every = 8\nbatch_size = 2\nwarmup_epochs = 0\n"
             "synth_prob = 0.8\nlr = 0.003\ncrop_size = [32, 32, 32]")
    text = grid.read_text().replace("epochs = 3\nlr = 0.001\ncrop_size = [16, 16, 16]", train)
    grid.write_text(text + "\n[evaluate]\ncross_organ = true\noverlap = 0.25\npreviews = 0\n")
    return grid


def test_table3_synthetic_off_diagonal_beats_real_off_diagonal(tmp_path):
    from benchmark.runner import run_grid
    from reports.loader import load_grid
    from reports.paper import load_paper_results
    from reports.records import collect
    from reports.tables import table3

    grid, uri = _grid(tmp_path), fresh_tracking_uri(tmp_path)
    outcomes = [o for only in ("organ=pancreas,regime=real", "organ=liver,regime=hu,synth_source=pancreas")
                for o in run_grid(grid, only=only, tracking_uri=uri, progress=False)]
    assert [o.status for o in outcomes] == ["finished", "finished"], [o.error for o in outcomes]
    grid_data = load_grid(uri, "xorgan")
    table = table3(grid_data, collect(grid_data)[1], load_paper_results(), [], "unet")
    names = [c.name for c in table.columns]
    rows = {(r[0], r[1]): dict(zip(names, r)) for r in table.rows}
    real = rows[("pancreas", "real")]["→ liver"]  # pancreas model on liver CTs
    synthetic = rows[("pancreas", "hu")]["→ liver"]  # liver model, pancreas generator
    print(f"Table 3 liver column: real {real}, hu {synthetic}; rows {table.rows}")
    assert synthetic is not None and real is not None
    assert synthetic > 0 and real <= 10.0 and synthetic > real
