"""[slurm] options reaching the sbatch script, their validation, and the vanished-job watch
(no cluster needed: submitit's script text and a fake squeue)."""
import os
import stat

import pytest
import submitit

from benchmark.errors import InputError
from benchmark.grid import parse_grid
from benchmark.slurm import QueueWatch, is_local_store, refuse_local_stores, submitit_executor

GRID = 'name = "g"\n[datasets]\nliver = "/d"\n[slurm]\n'


def _script(tmp_path, monkeypatch, slurm_toml):
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))
    ex = submitit_executor(tmp_path, parse_grid(GRID + slurm_toml).slurm, cluster="slurm")
    return ex._executor._make_submission_file_text("python -m x", "uid")


def test_qos_gres_extra_options_and_setup_lines(tmp_path, monkeypatch):
    script = _script(tmp_path, monkeypatch, 'qos = "long"\ngres = "gpu:a100:1"\nsignal_delay_s = 300\n'
                     'additional_parameters = {exclude = "node7", mail_type = "FAIL"}\n'
                     'setup = ["module load cuda/12.4", "source /shared/venv/bin/activate"]\n')
    for line in ("--qos=long", "--gres=gpu:a100:1", "--exclude=node7", "--mail-type=FAIL", "--signal=USR2@300"):
        assert f"#SBATCH {line}" in script, line
    assert script.index("module load cuda/12.4") < script.index("source /shared/venv/bin/activate") \
        < script.index("python -m x")


@pytest.mark.parametrize("toml, field", [('setup = "module load x"\n', "setup"),
                                         ("additional_parameters = [1]\n", "additional_parameters"),
                                         ("qos = 3\n", "qos"), ("signal_delay_s = -1\n", "signal_delay_s")])
def test_bad_slurm_fields_are_one_clear_error(tmp_path, monkeypatch, toml, field):
    with pytest.raises(InputError, match=rf"grid \[slurm\]: field '{field}'"):
        _script(tmp_path, monkeypatch, toml)


class _Job:
    def __init__(self, job_id, folder):
        self.job_id = job_id
        self.paths = submitit.core.utils.JobPaths(folder, job_id=job_id)


class _Queue:
    """A fake ``squeue`` on PATH answering what ``show`` last set (ids and states, or ids only when
    the format asks for no state), and a clock the watch reads."""

    def __init__(self, tmp_path, monkeypatch):
        self.listed, self.now = tmp_path / "listed", 0.0
        squeue = tmp_path / "squeue"
        squeue.write_text(f'#!/bin/sh\ncase "$*" in *%T*) cat {self.listed};; *) cut -d" " -f1 {self.listed};; esac\n')
        squeue.chmod(squeue.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setattr("benchmark.slurm.time.monotonic", lambda: self.now)

    def show(self, at: float, *lines: str) -> None:
        self.now = at
        self.listed.write_text("".join(f"{line}\n" for line in lines))


def _jobs(tmp_path, *ids):
    jobs = [_Job(i, tmp_path) for i in ids]
    jobs[0].paths.result_pickle.parent.mkdir(parents=True, exist_ok=True)
    return jobs


def test_queue_watch_waits_for_a_requeued_task_pending_or_briefly_absent(tmp_path, monkeypatch):
    """A time-limit requeue: RUNNING, gone from squeue for a few answers, PENDING (BeginTime) for
    minutes, RUNNING again. Never failed while listed alive or absent for less than absent_s."""
    queue, watch = _Queue(tmp_path, monkeypatch), QueueWatch(every_s=15)  # absent_s: 600 s
    jobs = _jobs(tmp_path, "5_0")
    timeline = [(0, "5_0 RUNNING"), (15, "5_0 COMPLETING")] + [(t, "") for t in (30, 45, 60, 75)] \
        + [(t, "5_0 PENDING") for t in range(90, 400, 15)] + [(400, "5_0 RUNNING"), (415, "5_0 RUNNING")]
    for at, line in timeline:
        queue.show(at, *([line] if line else []))
        assert watch.vanished(jobs) == [], (at, line)


def test_queue_watch_fails_a_task_slurm_lists_as_ended_without_result(tmp_path, monkeypatch):
    queue, watch = _Queue(tmp_path, monkeypatch), QueueWatch(every_s=15)  # grace: 4 polls = 60 s
    jobs = _jobs(tmp_path, "5_0", "5_1", "5_2")
    jobs[2].paths.result_pickle.write_bytes(b"x")  # finished: its result is there
    for at in (0, 15, 30, 45):
        queue.show(at, "5_0 RUNNING", "5_1 CANCELLED", "5_2 COMPLETED")
        assert watch.vanished(jobs) == [], at  # a result file on NFS may still be on its way
    queue.show(60, "5_0 RUNNING", "5_1 CANCELLED", "5_2 COMPLETED")
    assert [(j.job_id, why) for j, why in watch.vanished(jobs)] == [("5_1", "ended (CANCELLED)")]


def test_queue_watch_gives_a_task_that_requeued_itself_until_absent_s(tmp_path, monkeypatch):
    """Listed as ended, but submitit's log says it requeued itself after its last start."""
    queue, watch = _Queue(tmp_path, monkeypatch), QueueWatch(every_s=15, absent_s=600)
    jobs = _jobs(tmp_path, "5_0", "5_1")
    jobs[0].paths.stdout.write_text("submitit INFO - Starting with JobEnvironment(job_id=5_0)\n"
                                    "submitit INFO - Requeued job 5_0 (2 remaining timeouts)\n")
    jobs[1].paths.stdout.write_text("submitit INFO - Requeued job 5_1 (2 remaining timeouts)\n"
                                    "submitit INFO - Starting with JobEnvironment(job_id=5_1)\n")
    for at in range(0, 600, 15):
        queue.show(at, "5_0 NODE_FAIL")
        assert watch.vanished(jobs[:1]) == [], at
    queue.show(600, "5_0 NODE_FAIL")
    assert [j.job_id for j, _ in watch.vanished(jobs[:1])] == ["5_0"]
    watch = QueueWatch(every_s=15)
    for at in (0, 15, 30, 45, 60):  # restarted after its requeue: its end is final
        queue.show(at, "5_1 FAILED")
        gone = watch.vanished(jobs[1:])
    assert [j.job_id for j, _ in gone] == ["5_1"]


def test_queue_watch_fails_a_task_absent_for_absent_s(tmp_path, monkeypatch):
    queue, watch = _Queue(tmp_path, monkeypatch), QueueWatch(every_s=15, absent_s=600)
    jobs = _jobs(tmp_path, "5_0")
    for at in range(0, 600, 15):
        queue.show(at)
        assert watch.vanished(jobs) == [], at
    queue.show(600)
    assert [why for _, why in watch.vanished(jobs)] == ["left the Slurm queue for 600 s"]


# --- shared stores: a sqlite/file store is refused for many Slurm tasks unless allowed -------
@pytest.mark.parametrize("url, local", [
    ("sqlite:///mlruns/mlflow.db", True), ("sqlite:////shared/optuna.db", True), ("file:///shared/mlruns", True),
    ("/shared/mlruns", True), ("mlruns", True), ("http://127.0.0.1:5000", False),
    ("https://mlflow.example.org", False), ("postgresql://tb@dbhost/optuna", False),
    ("mysql+pymysql://tb@dbhost/optuna", False), ("databricks", False)])
def test_local_store_urls(url, local):
    assert is_local_store(url) is local


def _fake_grid(tmp_path, extra=""):
    from test_runner_fakes import make_fake_dataset, write_grid

    ds = {"liver": make_fake_dataset(tmp_path / "ds" / "liver", "liver")}
    return write_grid(tmp_path / "grid.toml", ds, "g", tmp_path / "results", extra=extra)


@pytest.mark.parametrize("uri_args", [[], ["--tracking-uri", "file:///shared/mlruns"]])
def test_slurm_executor_refuses_a_local_tracking_store_before_anything_runs(tmp_path, monkeypatch, capsys,
                                                                          uri_args):
    from benchmark.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # default: sqlite:///<cwd>/mlruns/mlflow.db
    grid = _fake_grid(tmp_path)
    assert main(["run", str(grid), "--executor", "slurm", *uri_args]) == 2
    err = capsys.readouterr().err
    assert "--executor slurm: MLflow tracking URI" in err and "docs/runner.md" in err
    assert "--allow-local-store" in err
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "results").exists()  # nothing written


def test_allowed_local_store_and_a_server_pass_the_check():
    refuse_local_stores({"MLflow tracking URI": "sqlite:////tmp/x.db"}, allowed=True, where="w")
    refuse_local_stores({"MLflow tracking URI": "http://127.0.0.1:5000",
                         "Optuna storage": "postgresql://tb@dbhost/optuna"}, allowed=False, where="w")


def test_tune_inside_a_slurm_job_refuses_a_sqlite_storage_unless_allowed(tmp_path, monkeypatch):
    from benchmark.tune import tune_cell

    grid = _fake_grid(tmp_path, '\n[optuna.space]\nlr = {low = 1e-4, high = 1e-1, log = true}\n')
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    with pytest.raises(InputError, match=r"inside Slurm job 77: Optuna storage 'sqlite:///.*optuna\.db'.*"
                                         r"docs/runner\.md.*--allow-local-store"):
        tune_cell(grid, "organ=liver,backbone=unet,regime=hu,fold=0", 1, tracking_uri="http://127.0.0.1:9")
    assert not (tmp_path / "results").exists()


# --- DataLoader workers and Slurm's time-limit signal -----------------------------------------
def _signal_probe(folder):
    """A CPU generator (it runs in the DataLoader workers) that records, per process, how SIGUSR2
    and SIGINT are handled there."""
    from models_testdata import CountingGenerator

    class SignalProbe(CountingGenerator):
        def __call__(self, ct_hu, organ_mask, spacing, rng):
            import signal

            usr2, sigint = signal.getsignal(signal.SIGUSR2), signal.getsignal(signal.SIGINT)
            (folder / str(os.getpid())).write_text(f"{usr2 == signal.SIG_IGN} {sigint is signal.default_int_handler}")
            return super().__call__(ct_hu, organ_mask, spacing, rng)

    return SignalProbe()


def test_dataloader_workers_ignore_the_time_limit_signal(tmp_path):
    """submitit's USR2 handler (checkpoint + `scontrol requeue` + exit) stays in the training process
    only; SIGINT stays Python's default (Ctrl-C -> KeyboardInterrupt) in the workers too."""
    import signal

    from models_testdata import make_items

    from models.config import TrainConfig
    from models.data import run_batches
    from models.volumes import load_volumes

    items = make_items(tmp_path / "cases", n_labeled=1, n_healthy=2, seed=4, shape=(34, 30, 20))
    cfg = TrainConfig(backbone="unet", size="tiny", crop_size=(16, 16, 16), spacing=(2.0, 2.0, 2.0), epochs=1,
                      iters_per_epoch=4, val_every=1, warmup_epochs=0, seed=3, num_workers=2, synth_prob=1.0)
    calls = tmp_path / "calls"
    calls.mkdir()
    previous = signal.signal(signal.SIGUSR2, lambda *_: None)  # like submitit's handler
    try:
        volumes = load_volumes(items, cfg.crop_size, progress=False)
        batches = list(run_batches(volumes, cfg, 0, 1, 4, _signal_probe(calls)))
        assert signal.getsignal(signal.SIGUSR2) not in (signal.SIG_IGN, signal.SIG_DFL)  # main process untouched
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert len(batches) == 4
    seen = {int(p.name): p.read_text() for p in calls.iterdir()}
    assert seen and os.getpid() not in seen  # the generator ran in the workers
    assert set(seen.values()) == {"True True"}
