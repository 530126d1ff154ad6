"""[slurm] options reaching the sbatch script, their validation, and the vanished-job watch
(no cluster needed: submitit's script text and a fake squeue)."""
import os
import stat

import pytest
import submitit

from benchmark.errors import InputError
from benchmark.grid import parse_grid
from benchmark.slurm import QueueWatch, submitit_executor

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
