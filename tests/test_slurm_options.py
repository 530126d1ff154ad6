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
    with pytest.raises(InputError, match=rf"field 'slurm\.{field}'"):  # found when the grid loads
        _script(tmp_path, monkeypatch, toml)


class _Job:
    def __init__(self, job_id, folder):
        self.job_id = job_id
        self.paths = submitit.core.utils.JobPaths(folder, job_id=job_id)


def test_queue_watch_reports_a_job_gone_twice_without_result(tmp_path, monkeypatch):
    listed = tmp_path / "listed"
    squeue = tmp_path / "squeue"
    squeue.write_text(f"#!/bin/sh\ncat {listed}\n")
    squeue.chmod(squeue.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    jobs = [_Job("5_0", tmp_path), _Job("5_1", tmp_path), _Job("5_2", tmp_path)]
    jobs[2].paths.result_pickle.parent.mkdir(parents=True, exist_ok=True)
    jobs[2].paths.result_pickle.write_bytes(b"x")  # finished: its result is there
    watch = QueueWatch(every_s=0)
    listed.write_text("5_0\n")
    assert watch.vanished(jobs) == []  # 5_1 missing once: may be between requeue steps
    listed.write_text("5_0\n5_1\n")
    assert watch.vanished(jobs) == []  # back (requeued, PENDING)
    listed.write_text("5_0\n")
    assert watch.vanished(jobs) == []
    assert [j.job_id for j, _ in watch.vanished(jobs)] == ["5_1"]
