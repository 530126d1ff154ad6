"""Atomic writing leaves nothing half-written; corrupt NIfTI files give a clear error."""

import numpy as np
import pytest

from benchmark.errors import InputError
from benchmark.io import atomic_dir, load_nifti, save_nifti_atomic, write_json_atomic


def test_atomic_dir_failure_keeps_old_target_and_no_temp(tmp_path):
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]


def test_atomic_dir_success_replaces_target(tmp_path):
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_nifti_round_trip_and_json(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    save_nifti_atomic(tmp_path / "a.nii.gz", data, affine)
    img = load_nifti(tmp_path / "a.nii.gz")
    assert np.array_equal(np.asarray(img.dataobj), data)
    assert np.allclose(img.affine, affine)
    write_json_atomic(tmp_path / "p.json", {"x": np.float32(1.5), "v": np.arange(2)})
    assert (tmp_path / "p.json").read_text().count("1.5") == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_truncated_gzip_is_reported_with_the_file_name(tmp_path):
    save_nifti_atomic(tmp_path / "ct.nii.gz", np.random.default_rng(0).normal(size=(16, 16, 16)), np.eye(4))
    raw = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "ct.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"ct\.nii\.gz: cannot read"):
        load_nifti(tmp_path / "ct.nii.gz", "CT")
    with pytest.raises(InputError, match="not found"):
        load_nifti(tmp_path / "missing.nii.gz")


def test_atomic_outputs_follow_the_umask_not_private_temp_modes(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
        write_json_atomic(tmp_path / "p.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "p.json").stat().st_mode) == 0o644


def _record_fsyncs_and_renames(monkeypatch):
    """Events ('fsync', path) / ('replace', target) in the order the io module makes them."""
    import os

    import tumorbench_common.io as io_mod

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(io_mod.os, "fsync", fsync)
    monkeypatch.setattr(io_mod.os, "replace", replace)
    return events


def test_atomic_file_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = _record_fsyncs_and_renames(monkeypatch)
    write_json_atomic(tmp_path / "out.json", {"a": 1})
    renamed = events.index(("replace", str(tmp_path / "out.json")))
    synced_files = [p for kind, p in events[:renamed] if kind == "fsync"]
    assert len(synced_files) == 1 and synced_files[0].startswith(str(tmp_path / ".out.json.tmp-"))
    assert ("fsync", str(tmp_path)) in events[renamed + 1:]


def test_atomic_dir_fsyncs_every_file_before_the_rename_and_the_parent_after(tmp_path, monkeypatch):
    events = _record_fsyncs_and_renames(monkeypatch)
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "a.txt").write_text("a")
        (tmp / "sub" / "b.txt").write_text("b")
    renamed = events.index(("replace", str(tmp_path / "out")))
    synced = {p.rsplit("/", 1)[-1] for kind, p in events[:renamed] if kind == "fsync"}
    assert {"a.txt", "b.txt", "sub"} <= synced
    assert ("fsync", str(tmp_path)) in events[renamed + 1:]
