"""Stages and a driver script for the tests against real components (Slurm, mlflow server).

SLOW_STAGES: the fake stages with SLOW_EPOCH_S seconds per training epoch (env), so a job can be
signalled mid-cell; each training start writes the Slurm array task it runs in to ``train/task.txt``.
``python _cluster_helpers.py GRID URI EXECUTOR [MAX_PARALLEL]`` runs a grid with them (the real
stages with CLUSTER_STAGES=real) and prints the outcome statuses as JSON. The tests keep their
sqlite store on this machine's disk, so the Slurm executor is told that is intended.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from test_runner_fakes import FAKE_STAGES, fake_train


def slow_train(config, train_items, val_items, out_dir, *, log_metrics=None, **kwargs):
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "task.txt"), "w") as task:
            task.write(f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}")

    def logged(metrics, epoch):
        log_metrics(metrics, epoch)
        time.sleep(float(os.environ.get("SLOW_EPOCH_S", "0")))

    return fake_train(config, train_items, val_items, out_dir, log_metrics=logged if log_metrics else None, **kwargs)


SLOW_STAGES = dataclasses.replace(FAKE_STAGES, train=slow_train)


def main() -> None:
    from benchmark.runner import run_grid

    grid, uri, executor = sys.argv[1:4]
    max_parallel = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    stages = None if os.environ.get("CLUSTER_STAGES") == "real" else SLOW_STAGES
    outcomes = run_grid(grid, executor=executor, max_parallel=max_parallel, tracking_uri=uri,
                        stages=stages, progress=False, allow_local_store=True)
    print(json.dumps([o.status for o in outcomes]))


if __name__ == "__main__":
    main()
