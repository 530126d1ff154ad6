"""Against real components: a Slurm cluster (`bash .ci/slurm_up.sh`, marker ``slurm``) and a real
`mlflow server` on 127.0.0.1 (marker ``mlflow_server``). Both skip with the reason when the
component is missing; they are not deselected, so `make test` runs them where it is up.
Two concurrent local invocations need neither and always run."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from test_runner_fakes import cell_runs, fresh_tracking_uri, make_fake_dataset, write_grid

TESTS = Path(__file__).resolve().parent
SLURM_TABLE = ('\n[slurm]\ngpus_per_node = 0\ncpus_per_task = 1\nmem_gb = 1\ntime_min = 10\n'
               'array_parallelism = 4\nsignal_delay_s = 30\n')


def _grid(tmp_path, epochs=3, folds="[0, 1]"):
    ds = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
    path = write_grid(tmp_path / "grid.toml", {"liver": ds}, "exp", tmp_path / "results", extra=SLURM_TABLE,
                      folds=folds)
    path.write_text(path.read_text().replace("epochs = 3", f"epochs = {epochs}"))
    return path


def _env(**extra):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
            "OMP_NUM_THREADS": "1", **extra}


def _default_sigint() -> None:
    """A test run started in the background (`cmd &` in a script) inherits SIGINT ignored, and Python
    then never raises KeyboardInterrupt: give the driver the default handling a terminal user has."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _drive(grid, uri, executor, max_parallel=1, **env):
    return subprocess.Popen([sys.executable, str(TESTS / "_cluster_helpers.py"), str(grid), uri, executor,
                             str(max_parallel)], env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)


def _finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


def _starts(results: Path) -> dict[str, list[int]]:
    """Training starts per cell folder (the fake trainer appends its start epoch)."""
    return {p.parent.parent.name: [int(x) for x in p.read_text().split()] for p in results.rglob("train/starts.txt")}


def _epochs_once(uri, run_id, epochs):
    from benchmark import tracking

    steps = Counter(m.step for m in tracking.client_for(uri).get_metric_history(run_id, "train_loss"))
    assert sorted(steps.items()) == [(e, 1) for e in range(epochs)], steps


def test_two_concurrent_invocations_train_each_cell_once(tmp_path):
    grid, uri = _grid(tmp_path), fresh_tracking_uri(tmp_path)
    procs = [_drive(grid, uri, "local", SLOW_EPOCH_S="0.3") for _ in range(2)]
    statuses = [_finish(p)[0] for p in procs]
    assert Counter(s for run in statuses for s in run)["finished"] == 4  # each cell finished by one of them
    assert all(set(run) <= {"finished", "skipped", "busy"} for run in statuses)
    assert all(starts == [0] for starts in _starts(tmp_path / "results").values()) and len(_starts(tmp_path / "results")) == 4
    runs = cell_runs(uri, "exp")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}


# --- Slurm ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm_cluster():
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        pytest.skip("no Slurm here (sbatch/sinfo not found); `bash .ci/slurm_up.sh` as root installs and "
                    "starts a one-node cluster")
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if not any(s.startswith(("idle", "mix", "alloc")) for s in state.stdout.split()):
        pytest.skip(f"Slurm is installed but no node is up (sinfo: {state.stdout.strip() or state.stderr.strip()}); "
                    "run `bash .ci/slurm_up.sh`")


@pytest.mark.slurm
def test_slurm_job_array_lands_four_finished_runs(slurm_cluster, tmp_path):
    grid, uri = _grid(tmp_path), fresh_tracking_uri(tmp_path)
    statuses, _ = _finish(_drive(grid, uri, "slurm"))
    assert statuses == ["finished"] * 4
    runs = cell_runs(uri, "exp")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    for log in runs["tags.tumorbench.slurm_log"]:  # each cell's Slurm log, as an MLflow tag
        assert Path(log).is_file() and "_" in Path(log).name
    assert len({log.split("/")[-1].split("_")[0] for log in runs["tags.tumorbench.slurm_log"]}) == 1  # one array


def _job_of(results: Path, timeout=300) -> str:
    """Wait until the cell trained past epoch 1; return its running Slurm job id."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        last = next(iter(results.rglob("train/last.pt")), None)
        if last is not None and json.loads(last.read_text())["epoch"] >= 1:
            jobs = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True).stdout.split()
            if jobs:
                return jobs[0]
        time.sleep(0.2)
    raise AssertionError("the cell never started training")


def _signal_steps(task: str) -> None:
    """What Slurm does ``signal_delay_s`` before the time limit (``--signal=USR2@N``, no ``B:``) and
    on preemption: USR2 to every process of the task's job steps, not to the batch shell."""
    subprocess.run(["scancel", "--signal=USR2", task], check=True)


def _signal_each_cell_once(roots: list[Path], n_cells: int, timeout=600) -> int:
    """Signal each cell's array task once, when the cell trained past epoch 1 and its task runs
    (the fake trainer writes its task id); returns how many were signalled."""
    signalled: set[Path] = set()
    start = time.monotonic()
    while len(signalled) < n_cells and time.monotonic() - start < timeout:
        for train in (t for root in roots for t in (root / "results").rglob("train") if t not in signalled):
            last, task = train / "last.pt", train / "task.txt"
            if not (last.is_file() and last.stat().st_size and task.is_file()):
                continue
            state = subprocess.run(["squeue", "-h", "-j", task.read_text(), "-o", "%T"], capture_output=True,
                                   text=True).stdout.strip()
            if json.loads(last.read_text())["epoch"] >= 1 and state == "RUNNING":
                _signal_steps(task.read_text())
                signalled.add(train)
        time.sleep(0.2)
    return len(signalled)


@pytest.mark.slurm
def test_array_tasks_signalled_at_time_limit_are_requeued_into_the_same_runs_every_time(slurm_cluster, tmp_path):
    """The time-limit scenario three times over, at once: three drivers, each a 2-cell array
    (oversubscribed on this 2-CPU node so the six tasks run together); every task gets the signal
    mid-cell. Each driver (polling squeue every 2 s, so a brief absence around the requeue is seen)
    waits for its requeued tasks and exits 0; each cell finishes in its one MLflow run, resumed
    once, every epoch logged once."""
    epochs, roots, drivers, uris = 8, [tmp_path / f"repeat{i}" for i in range(3)], [], []
    for root in roots:
        grid, uri = _grid(root, epochs=epochs, folds="[0]"), fresh_tracking_uri(root)
        grid.write_text(grid.read_text() + "additional_parameters = {oversubscribe = true}\n")
        drivers.append(_drive(grid, uri, "slurm", SLOW_EPOCH_S="1.0", TUMORBENCH_SQUEUE_EVERY_S="2"))
        uris.append(uri)
    assert _signal_each_cell_once(roots, 6) == 6
    for root, driver, uri in zip(roots, drivers, uris):
        statuses, err = _finish(driver)
        assert statuses == ["finished"] * 2, (root.name, err[-2000:])
        runs = cell_runs(uri, "exp")
        assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}, root.name  # no duplicate run
        assert list(runs["tags.tumorbench.resumed"]) == ["1", "1"], root.name
        for starts in _starts(root / "results").values():
            assert len(starts) == 2 and 0 < starts[1] < epochs, (root.name, starts)  # resumed mid-cell
        for run_id in runs["run_id"]:
            _epochs_once(uri, run_id, epochs)  # no epoch lost, none twice


@pytest.mark.slurm
def test_real_trainer_with_dataloader_workers_is_requeued_once_and_finishes(slurm_cluster, tmp_path):
    """The real trainer (tiny preset, a phantom liver, num_workers = 2) signalled mid-training the
    way Slurm does: only the training process handles the signal (one "Caught signal", one requeue;
    the workers ignore it), the cell resumes in its one MLflow run and logs every epoch once."""
    from benchmark.data import generate_phantom_dataset
    from test_runner_fakes import write_grid

    epochs = 6
    data = tmp_path / "phantom" / "liver"
    generate_phantom_dataset(data, "liver", n_cases=10, seed=3, shape=(64, 56, 40), progress=False)
    grid = write_grid(tmp_path / "grid.toml", {"liver": data}, "exp", tmp_path / "results", regimes='["real"]',
                      extra="\n[evaluate]\noverlap = 0.25\npreviews = 0\ncross_organ = false\n" + SLURM_TABLE)
    grid.write_text(grid.read_text().replace("epochs = 3", f"epochs = {epochs}\niters_per_epoch = 2\nval_every = 3\n"
                                             "batch_size = 1\nnum_workers = 2").replace("[16, 16, 16]", "[32, 32, 32]"))
    uri = fresh_tracking_uri(tmp_path)
    driver = _drive(grid, uri, "slurm", CLUSTER_STAGES="real", TUMORBENCH_SQUEUE_EVERY_S="2")
    last = tmp_path / "results"
    start = time.monotonic()
    while not any(last.rglob("train/last.pt")):  # epoch 1 done: mid-training with 5 epochs to go
        assert time.monotonic() - start < 600 and driver.poll() is None, "the cell never trained an epoch"
        time.sleep(0.2)
    job = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True).stdout.split()[0]
    _signal_steps(job)
    statuses, _ = _finish(driver)
    assert statuses == ["finished"]
    log = (tmp_path / "results" / ".submitit" / f"{job}_0_log.out").read_text()  # submitit logs all levels here
    assert log.count("Caught signal SIGUSR2") == 1 and log.count("Requeued job") == 1, log[-3000:]
    assert "DataLoader worker" not in log
    runs = cell_runs(uri, "exp")
    assert len(runs) == 1 and runs["status"][0] == "FINISHED" and runs["tags.tumorbench.resumed"][0] == "1"
    from benchmark import tracking

    steps = Counter(m.step for m in tracking.client_for(uri).get_metric_history(runs["run_id"][0], "train_loss"))
    assert sorted(steps.items()) == [(e, 1) for e in range(1, epochs + 1)], steps  # every epoch once


@pytest.mark.slurm
def test_vanished_job_is_failed_not_waited_for(slurm_cluster, tmp_path):
    grid, uri = _grid(tmp_path, epochs=50, folds="[0]"), fresh_tracking_uri(tmp_path)
    grid.write_text(grid.read_text().replace('regimes = ["real", "hu"]', 'regimes = ["hu"]'))
    driver = _drive(grid, uri, "slurm", SLOW_EPOCH_S="1.0", TUMORBENCH_SQUEUE_EVERY_S="2")
    subprocess.run(["scancel", _job_of(tmp_path / "results")], check=True)  # no sacct on this cluster
    statuses, _ = _finish(driver, timeout=180)
    assert statuses == ["failed"]
    runs = cell_runs(uri, "exp")
    assert len(runs) == 1 and runs["status"][0] == "RUNNING"  # the next invocation resumes it


@pytest.mark.slurm
def test_ctrl_c_cancels_the_array(slurm_cluster, tmp_path):
    import signal

    grid, uri = _grid(tmp_path, epochs=50), fresh_tracking_uri(tmp_path)
    driver = _drive(grid, uri, "slurm", SLOW_EPOCH_S="1.0")
    _job_of(tmp_path / "results")
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert "cancelled 4 job(s) of Slurm job array" in err
    for _ in range(60):
        if not subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.strip():
            break
        time.sleep(0.5)
    else:
        raise AssertionError("jobs still queued after Ctrl-C")


# --- a real mlflow server -------------------------------------------------------------------
@pytest.fixture
def mlflow_server(tmp_path):
    from benchmark import tracking

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = tracking.start_ui(f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}", port=port)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.skip(f"`mlflow server` exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.skip("`mlflow server` did not answer on 127.0.0.1 within 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.mlflow_server
def test_mlflow_server_receives_cells_from_two_concurrent_workers(mlflow_server, tmp_path):
    grid = _grid(tmp_path)
    statuses, _ = _finish(_drive(grid, mlflow_server, "local", max_parallel=2, SLOW_EPOCH_S="0.2"))
    assert statuses == ["finished"] * 4
    runs = cell_runs(mlflow_server, "exp")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    from benchmark import tracking

    client = tracking.client_for(mlflow_server)
    for run_id in runs["run_id"]:
        _epochs_once(mlflow_server, run_id, 3)
        assert {a.path for a in client.list_artifacts(run_id)} >= {"summary.json", "cell.json"}
