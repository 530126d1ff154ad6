"""`tumorbench demo` plumbing: the grid it writes, the stages it calls, what it prints.

The full run (generators + 9 cells, ~9 min on 2 cores) is what `make demo` does; here the grid run
and the report are replaced by recorders so the test checks the wiring in seconds.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from benchmark import demo
from benchmark.cell import cells_from_grid
from benchmark.grid import load_grid


def test_demo_grid_is_three_organs_by_three_regimes(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(demo.demo_grid_toml(tmp_path, epochs=2, iters_per_epoch=3, seed=0))
    grid = load_grid(path)
    cells = [c for c in cells_from_grid(grid, {organ: "fp" for organ in grid.datasets}) if not c.cross_organ]
    assert sorted((c.organ, c.regime) for c in cells) == sorted(
        (o, r) for o in ("liver", "pancreas", "kidney") for r in ("real", "hu", "difftumor"))
    assert {c.backbone for c in cells} == {"unet"} and {c.fold for c in cells} == {0}
    assert {c.generator_config().get("checkpoint") for c in cells if c.regime == "difftumor"} == {"auto"}
    assert set(grid.eval_organs("liver")) == {"liver", "pancreas", "kidney"}  # own fold + cross-organ


def test_run_demo_makes_checked_phantoms_then_runs_grid_and_report(tmp_path, monkeypatch, capsys):
    import benchmark.runner
    import reports.build

    calls = []

    def fake_run_grid(grid_path, tracking_uri, progress):
        calls.append(("grid", Path(grid_path), tracking_uri))
        return [SimpleNamespace(status="finished")] * 8 + [SimpleNamespace(status="failed")]

    def fake_build_report(out, options, progress):
        calls.append(("report", Path(out), options.experiment))
        return Path(out) / "index.html"

    monkeypatch.setattr(benchmark.runner, "run_grid", fake_run_grid)
    monkeypatch.setattr(reports.build, "build_report", fake_build_report)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = demo.run_demo(tmp_path / "out", cases=10, tracking_uri=uri, progress=False)
    assert [c[0] for c in calls] == ["grid", "report"]
    assert calls[0][1] == tmp_path / "out" / "demo_grid.toml" and calls[0][2] == uri
    assert calls[1][2] == demo.DEMO_EXPERIMENT
    assert result.cells == {"finished": 8, "skipped": 0, "failed": 1}
    for organ in ("liver", "pancreas", "kidney"):
        assert (tmp_path / "out" / "phantom" / organ / "splits.json").is_file()
        assert (tmp_path / "out" / "phantom" / organ / ".tumorbench_check.json").is_file()  # checked
    assert any("phantom_kidney" in s and "5 folds" in s for s in result.dataset_summaries)
    text = demo.format_demo_result(result)
    assert "8 finished, 0 skipped, 1 failed" in text and str(result.report_index) in text and uri in text
