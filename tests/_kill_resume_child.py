"""Child process of test_kill_resume: the real tiny trainer logging to MLflow through the
runner's MetricBuffer, killed with SIGKILL at a chosen point (KILL_AT=after_log:K|after_save:K).

argv: tracking_uri cases_dir out_dir epochs
"""
import os
import signal
import sys
from pathlib import Path

from models_testdata import make_items

import models.trainer as trainer
from benchmark import tracking
from models.config import TrainConfig


def _die_after(fn, when_epoch, epoch_of):
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        if epoch_of(*args) == when_epoch:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapped


def main() -> None:
    uri, cases, out, epochs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    items = make_items(cases, n_labeled=3, n_healthy=1, seed=2, shape=(28, 26, 24))
    client = tracking.client_for(uri)
    exp = tracking.ensure_experiment(client, "kill", uri)
    runs = client.search_runs([exp])
    run_id = runs[0].info.run_id if runs else client.create_run(exp).info.run_id
    buffer = tracking.MetricBuffer(client, run_id)
    point, _, k = os.environ.get("KILL_AT", "").partition(":")
    if point == "after_log":
        buffer.log_epoch = _die_after(buffer.log_epoch, int(k), lambda metrics, step: step)
    elif point == "after_save":
        import torch

        def epoch_of(path, state):
            return state["epoch"] if Path(path).name == "last.pt" else None

        trainer.save_checkpoint = _die_after(trainer.save_checkpoint, int(k), epoch_of)
        del torch
    cfg = TrainConfig(crop_size=(16, 16, 16), spacing=(2.0, 2.0, 2.0), epochs=epochs, iters_per_epoch=1,
                      val_every=2, warmup_epochs=0, seed=5, lr=1e-3)
    trainer.train(cfg, items[:3], items[3:], out, log_metrics=buffer.log_epoch, progress=False,
                  cache_dir=cases / "cache")
    client.set_terminated(run_id, "FINISHED")


if __name__ == "__main__":
    main()
