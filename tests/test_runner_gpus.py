"""``--gpus``: one local worker per GPU, each seeing only its own (issue 29, point 9). Tested
without GPUs by what each worker process sees: its CUDA_VISIBLE_DEVICES and the device string
the cell's stages receive."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from benchmark.errors import InputError
from test_runner_fakes import FAKE_STAGES, fake_train, fresh_tracking_uri, make_fake_dataset, write_grid


def seen_train(config, train_items, val_items, out_dir, *, device="cpu", **kwargs):
    """Fake trainer: records what its worker sees, then waits until the other cell's worker has
    arrived too (so the two cells provably run at the same time, on two workers)."""
    barrier = Path(os.environ["GPU_TEST_BARRIER"])
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / str(os.getpid())).write_text("")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "seen.json").write_text(json.dumps({
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "device": device, "pid": os.getpid()}))
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return fake_train(config, train_items, val_items, out_dir, device=device, **kwargs)


def _grid(tmp_path, device='"cuda"'):
    ds = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
    return write_grid(tmp_path / "grid.toml", {"liver": ds}, "exp", tmp_path / "results", device=device)


def test_each_worker_sees_only_its_own_gpu(tmp_path, monkeypatch):
    from benchmark.runner import run_grid

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("GPU_TEST_BARRIER", str(tmp_path / "barrier"))
    outcomes = run_grid(_grid(tmp_path), tracking_uri=fresh_tracking_uri(tmp_path), gpus=["0", "1"],
                        stages=dataclasses.replace(FAKE_STAGES, train=seen_train), progress=False)
    assert [o.status for o in outcomes] == ["finished", "finished"]
    seen = [json.loads(p.read_text()) for p in sorted((tmp_path / "results").rglob("seen.json"))]
    assert sorted(s["CUDA_VISIBLE_DEVICES"] for s in seen) == ["0", "1"]  # one GPU each, both used
    assert {s["device"] for s in seen} == {"cuda:0"}  # the one GPU the worker sees
    assert len({s["pid"] for s in seen}) == 2 and os.getpid() not in {s["pid"] for s in seen}
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the driver's own environment is untouched


def test_gpu_ids_map_through_the_drivers_visible_devices(tmp_path, monkeypatch):
    import torch

    from benchmark.grid import load_grid
    from benchmark.runner import local_gpus

    grid = load_grid(_grid(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert local_gpus(grid, "local", None, None) == (2, ["4", "6"])  # default: every visible GPU
    assert local_gpus(grid, "local", None, ["1"]) == (1, ["6"])
    assert local_gpus(grid, "local", 1, None) == (1, None)  # --max-parallel 1: in this process, as before
    with pytest.raises(InputError, match="one cell per GPU"):
        local_gpus(grid, "local", 3, ["0", "1"])
    with pytest.raises(InputError, match="only 2 GPUs visible"):
        local_gpus(grid, "local", None, ["2"])
    with pytest.raises(InputError, match="--gpus: needs --executor local"):
        local_gpus(grid, "slurm", None, ["0"])
    with pytest.raises(InputError, match="--gpus: needs"):
        local_gpus(load_grid(_grid(tmp_path / "cpu", device='"cpu"')), "local", None, ["0"])


def test_cli_parses_gpus(capsys):
    from benchmark.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--gpus 0,1,..." in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        main(["run", "g.toml", "--gpus", "0,x"])
    assert err.value.code == 2 and "expected distinct GPU indices" in capsys.readouterr().err
