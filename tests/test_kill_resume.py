"""Kill-and-resume with the real tiny trainer and a real MLflow (sqlite) store: after every
SIGKILL, each epoch whose checkpoint exists has its metrics in MLflow exactly once, and the
finished run has every epoch exactly once with the values the checkpoint history holds, also
when the last kill left a truncated ``last.pt`` (a node crash): the run resumes from
``last.prev.pt`` with a warning instead of failing on every retry."""
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from benchmark import tracking

EPOCHS = 6
TESTS = Path(__file__).resolve().parent


def _child(uri, tmp_path, kill_at=""):
    env = {**os.environ, "KILL_AT": kill_at, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    return subprocess.Popen([sys.executable, str(TESTS / "_kill_resume_child.py"), uri, str(tmp_path / "cases"),
                             str(tmp_path / "train"), str(EPOCHS)], env=env, stderr=subprocess.PIPE, text=True)


def _steps(uri, key="train_loss"):
    client = tracking.client_for(uri)
    run = client.search_runs([client.get_experiment_by_name("kill").experiment_id])[0]
    return client.get_metric_history(run.info.run_id, key)


def _checkpointed_epoch(tmp_path) -> int:
    last = tmp_path / "train" / "last.pt"
    return torch.load(last, weights_only=True)["epoch"] if last.is_file() else 0


def _assert_logged_once_up_to_checkpoint(uri, tmp_path):
    counts = Counter(m.step for m in _steps(uri))
    assert all(n == 1 for n in counts.values()), counts  # no epoch twice
    assert set(range(1, _checkpointed_epoch(tmp_path) + 1)) <= set(counts), counts  # none lost


def test_sigkill_at_any_point_loses_and_duplicates_no_epoch(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    # both windows around the checkpoint: killed right after logging epoch 2 (no last.pt for it:
    # the resumed run replays epoch 2) and right after writing last.pt of epoch 3
    for kill_at in ("after_log:2", "after_save:3"):
        proc = _child(uri, tmp_path, kill_at)
        assert proc.wait(timeout=300) == -signal.SIGKILL, proc.stderr.read()[-2000:]
        _assert_logged_once_up_to_checkpoint(uri, tmp_path)
    # and a kill at a random moment of epochs 4-6
    proc = _child(uri, tmp_path)
    rng = np.random.default_rng(0)
    start = time.monotonic()
    while _checkpointed_epoch(tmp_path) < 4 and proc.poll() is None and time.monotonic() - start < 300:
        time.sleep(0.05)
    time.sleep(float(rng.uniform(0.0, 1.5)))
    proc.kill()
    proc.wait(timeout=60)
    _assert_logged_once_up_to_checkpoint(uri, tmp_path)
    last = tmp_path / "train" / "last.pt"
    prev_epoch = torch.load(tmp_path / "train" / "last.prev.pt", weights_only=True)["epoch"]
    if last.is_file():  # (absent if the kill fell between the two renames of a save: same fallback)
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # the node crashed mid-write
    proc = _child(uri, tmp_path)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert f"resuming from its predecessor {last.with_name('last.prev.pt')} (epoch {prev_epoch})" in proc.stderr.read()
    logged = {m.step: m.value for m in _steps(uri)}
    assert sorted(Counter(m.step for m in _steps(uri)).items()) == [(e, 1) for e in range(1, EPOCHS + 1)]
    history = torch.load(tmp_path / "train" / "last.pt", weights_only=True)["history"]
    assert torch.load(tmp_path / "train" / "last.prev.pt", weights_only=True)["epoch"] == EPOCHS - 1
    assert [round(logged[h["epoch"]], 6) for h in history] == [round(h["train_loss"], 6) for h in history]
    assert len(_steps(uri, "val_tumor_dsc")) == EPOCHS // 2
