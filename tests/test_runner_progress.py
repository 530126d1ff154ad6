"""The cells bar with cells in other processes shows each running cell's epoch (issue 32), read
from the cell lease's progress note (`benchmark.lease.read_epoch`), in a real parallel local run."""
from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import pytest

from test_runner_fakes import FAKE_STAGES, fake_train, fresh_tracking_uri, make_fake_dataset, write_grid

SEEN = "PROGRESS_TEST_SEEN"  # folder where the test marks the cells whose epoch the bar showed


def waiting_train(config, train_items, val_items, out_dir, *, log_metrics=None, **kwargs):
    """Fake trainer that, after logging epoch 1, waits until the driver's bar has shown that epoch
    for its cell (the test marks it in ``$PROGRESS_TEST_SEEN``): the bar is read while the cell runs."""
    cell = Path(out_dir).parent.name

    def logged(metrics, epoch):
        log_metrics(metrics, epoch)
        deadline = time.monotonic() + 15
        while epoch == 1 and not (Path(os.environ[SEEN]) / cell).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    return fake_train(config, train_items, val_items, out_dir, log_metrics=logged, **kwargs)


@pytest.mark.parametrize("executor", ["local", "submitit-local"])
def test_parallel_cells_bar_shows_each_running_cells_epoch(tmp_path, monkeypatch, capfd, executor):
    """Pool workers (local) and submitit jobs (the Slurm executor's polling path, run locally)."""
    from benchmark import executors
    from benchmark.runner import run_grid

    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv(SEEN, str(seen))
    tests = Path(__file__).resolve().parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tests.parent), str(tests)]))  # for submitit's jobs
    monkeypatch.setattr(executors, "POLL_S", 0.1)
    texts: list[str] = []
    show = executors._Progress._show

    def recording_show(self):  # the driver's bar: record its postfix, mark the cells it names at epoch 1
        show(self)
        texts.append(self.bar.postfix)
        for task in self.running.values():
            if f"{task.cell.run_name} e1/3" in self.bar.postfix:
                (seen / task.results_dir.name).touch()

    monkeypatch.setattr(executors._Progress, "_show", recording_show)
    ds = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
    grid = write_grid(tmp_path / "grid.toml", {"liver": ds}, "exp", tmp_path / "results")
    outcomes = run_grid(grid, executor=executor, tracking_uri=fresh_tracking_uri(tmp_path), max_parallel=2,
                        stages=dataclasses.replace(FAKE_STAGES, train=waiting_train), progress=True)
    assert [o.status for o in outcomes] == ["finished", "finished"]
    for name in ("liver·unet·real·f0", "liver·unet·hu·f0"):
        assert any("running=" in t and f"{name} e1/3" in t for t in texts), (name, texts[-5:])
        assert (seen / next(Path(o.results_dir).name for o in outcomes if o.cell.run_name == name)).exists()
    assert re.search(r"liver·unet·(real|hu)·f0 e1/3", capfd.readouterr().err)  # what the user sees
    assert "|" not in texts[-1]  # no cell named once every cell ended
    assert not list((tmp_path / "results").rglob(".lease*"))  # the progress note goes with the lease
