"""tumorbench_common: the shared bottom layer (atomic writes, cohorts, default MLflow store)."""
from pathlib import Path

import math

import pytest

from tumorbench_common import cohorts
from tumorbench_common.errors import InputError
from tumorbench_common.io import atomic_write, read_json, save_figure_atomic, write_bytes_atomic
from tumorbench_common.tracking_uri import resolve_tracking_uri


def test_failed_writer_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.pt"
    target.write_bytes(b"old")

    def broken(tmp: Path):
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_save_figure_atomic_writes_a_png_in_a_new_folder(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure_atomic(fig, tmp_path / "sub" / "f.png", dpi=50)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]


def test_read_json_raises_the_callers_error_naming_the_file(tmp_path):
    class LayerError(ValueError):
        pass

    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(LayerError, match=r"x\.json: config is not valid JSON"):
        read_json(bad, "config", LayerError)
    with pytest.raises(InputError, match="missing.json: JSON file not found"):
        read_json(tmp_path / "missing.json")


@pytest.mark.parametrize("radius,name", [(0.0, "0-5"), (4.999, "0-5"), (5.0, "5-10"), (10.0, "10-15"),
                                         (19.99, "15-20"), (20.0, "20+"), (1e6, "20+")])
def test_size_bins_are_left_closed(radius, name):
    assert cohorts.size_bin(radius) == name


def test_early_is_radius_at_most_10_mm():
    assert cohorts.is_early(10.0) and not cohorts.is_early(10.001)


@pytest.mark.parametrize("age,group", [(49, "<50"), (49.9, "<50"), (50, "50-59"), ("59", "50-59"), (60, "60-69"),
                                       (69.5, "60-69"), (70, "70+"), (101, "70+"), (None, None), (math.nan, None),
                                       ("unknown", None)])
def test_age_groups(age, group):
    assert cohorts.age_group(age) == group


def test_names_follow_the_definitions():
    assert cohorts.SIZE_BIN_NAMES == ("0-5", "5-10", "10-15", "15-20", "20+")
    assert cohorts.AGE_GROUP_NAMES == ("<50", "50-59", "60-69", "70+")


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_tracking_uri() == "sqlite:///env.db"
    assert resolve_tracking_uri("http://server:5000") == "http://server:5000"


def test_load_file_names_the_file_with_the_callers_error(tmp_path):
    from tumorbench_common.io import load_file

    class LayerError(ValueError):
        pass

    with pytest.raises(LayerError, match=r"nope\.pt: weights not found"):
        load_file(tmp_path / "nope.pt", "weights", lambda p: p.read_bytes(), LayerError)
    corrupt = tmp_path / "c.pt"
    corrupt.write_bytes(b"x")
    with pytest.raises(LayerError, match=r"c\.pt: cannot read weights \(EOFError: truncated\)"):
        load_file(corrupt, "weights", lambda p: (_ for _ in ()).throw(EOFError("truncated")), LayerError)
    assert load_file(corrupt, "weights", lambda p: p.read_bytes()) == b"x"


@pytest.mark.parametrize("sex,out", [("M", "M"), ("F", "F"), ("m", None), ("", None), (None, None), (float("nan"), None)])
def test_sex_values_other_than_m_f_are_unknown(sex, out):
    assert cohorts.sex_or_none(sex) == out
