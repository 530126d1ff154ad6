"""`tumorbench perf hu` runs end to end on a small CT; its full-volume baseline renders the
same masks as the box-only implementation (no timing assertions)."""
from benchmark.cli import main


def test_perf_hu_small_run_masks_identical(capsys):
    code = main(["perf", "hu", "--shape", "200", "160", "130", "--bank-shape", "60", "60", "60",
                 "--repeats", "1", "--naive-repeats", "1", "--geometry", "difftumor"])
    out = capsys.readouterr().out
    assert code == 0
    for size in ("tiny", "small", "medium", "large", "mix"):
        assert any(line.startswith(size) for line in out.splitlines()), out
    assert out.count("masks identical") == 4 and "MASKS DIFFER" not in out
