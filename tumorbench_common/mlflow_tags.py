"""The MLflow tag names of TumorBench runs: one home, read by benchmark/ (writes) and reports/ (reads).

Conventions (docs/contracts.md): project tags are namespaced ``tumorbench.*``; a value that is a
Cell field (organ, backbone, regime, fold, seed, preset, synth_source, ...) is a *param*, never
also a tag; MLflow's own ``mlflow.*`` tags carry the run name, parent, note and source (the UI's
Source and Version columns). Stores written before the namespace used the bare names
(``cell_hash``, ``results_dir``, ``git_commit``, ...); `read_tag` falls back to them.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Mapping

# MLflow's own (the UI shows them)
RUN_NAME = "mlflow.runName"
PARENT_RUN = "mlflow.parentRunId"
NOTE = "mlflow.note.content"
GIT_COMMIT = "mlflow.source.git.commit"  # the UI's Version column
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"

# TumorBench's own
PREFIX = "tumorbench."
KIND = PREFIX + "kind"  # cell | grid | study | report | realism | reader_study | scorecard
CELL_HASH = PREFIX + "cell_hash"
GRID = PREFIX + "grid"  # the grid's name on its parent run (the experiment may differ, docs/runner.md)
GRID_HASH = PREFIX + "grid_hash"  # of the grid's cell hashes: a rerun of the same cells reuses its parent
INPUTS_HASH = PREFIX + "inputs_hash"  # of a report's inputs: the same inputs reuse the report run
RESULTS_DIR = PREFIX + "results_dir"
DATASET_DIR = PREFIX + "dataset_dir"
CHECKPOINT = PREFIX + "checkpoint"  # the final checkpoint, relative to RESULTS_DIR
DEVICE = PREFIX + "device"
RESUMED = PREFIX + "resumed"
ERROR = PREFIX + "error"
STOPPED = PREFIX + "stopped"
SLURM_JOB_ID = PREFIX + "slurm_job_id"
SLURM_LOG = PREFIX + "slurm_log"
CREATE_TOKEN = PREFIX + "create_token"
STUDY_NAME = PREFIX + "study_name"
OPTUNA_STORAGE = PREFIX + "optuna_storage"
GENERATORS = PREFIX + "generators"
ORGANS = PREFIX + "organs"
REFUSED = PREFIX + "refused"
DATASET_FINGERPRINTS = PREFIX + "dataset_fingerprints"
STUDY_ID = PREFIX + "study_id"
TASK = PREFIX + "task"

_LEGACY = {GIT_COMMIT: "git_commit"}  # the old name of a tag that is now MLflow's own


def read_tag(tags: Mapping[str, str], key: str, default: str | None = None) -> str | None:
    """``tags[key]``, else its pre-namespace name (stores written before the ``tumorbench.`` prefix)."""
    if key in tags:
        return tags[key]
    old = _LEGACY.get(key, key[len(PREFIX):] if key.startswith(PREFIX) else None)
    return tags.get(old, default) if old else default


def git_commit(where: Path = Path(__file__).parent) -> str | None:
    """HEAD of the git checkout holding ``where`` (this code), None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def command_name(argv: list[str] | None = None) -> str:
    """``tumorbench run`` for ``tumorbench run grid.toml`` (also via ``python -m benchmark``), else the
    program and its first argument."""
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]).name if argv and argv[0] else "python"
    program = "tumorbench" if program in ("tumorbench", "__main__.py") else program
    first = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else ""
    return f"{program} {Path(first).name}".strip()


def source_tags(entry: str | None = None) -> dict[str, str]:
    """The UI's Source (``mlflow.source.name``/``type``) and Version (git commit, when the code is a
    git checkout) of a run started by ``entry`` (default: the command line's program)."""
    tags = {SOURCE_NAME: entry or command_name(), SOURCE_TYPE: "LOCAL"}
    commit = git_commit()
    if commit:
        tags[GIT_COMMIT] = commit
    return tags
