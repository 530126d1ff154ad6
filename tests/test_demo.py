"""`tumorbench demo` plumbing: the grid it writes, the stages it calls, what it prints, the shipped
generator weights and the contrast measure.

The full run (9 cells, minutes on 2 cores) is what `make demo` does and what the slow test in
tests/test_demo_slow.py checks; here the grid run and the report are replaced by recorders.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmark import demo
from benchmark.cell import cells_from_grid
from benchmark.grid import load_grid


def test_demo_grid_is_three_organs_by_three_regimes(tmp_path):
    settings = demo.DemoSettings(epochs=2, iters_per_epoch=3)
    path = tmp_path / "grid.toml"
    path.write_text(demo.demo_grid_toml(tmp_path, settings, checkpoint=tmp_path / "weights"))
    grid = load_grid(path)
    cells = [c for c in cells_from_grid(grid, {organ: "fp" for organ in grid.datasets}) if not c.cross_organ]
    assert sorted((c.organ, c.regime) for c in cells) == sorted(
        (o, r) for o in ("liver", "pancreas", "kidney") for r in ("real", "hu", "difftumor"))
    assert {c.backbone for c in cells} == {"unet"} and {c.fold for c in cells} == {0}
    diff = [c.generator_config() for c in cells if c.regime == "difftumor"]
    assert {d["checkpoint"] for d in diff} == {str((tmp_path / "weights").resolve())}
    # the official 0-4 voxel blend blur at 1 mm is 0-4 mm (the generator converts to 3 mm voxels)
    assert {tuple(d["blur_sigma_mm"]) for d in diff} == {(0.0, 4.0)}
    assert {c.hp()["epochs"] * c.hp()["iters_per_epoch"] for c in cells} == {6}
    assert set(grid.eval_organs("liver")) == {"liver"}  # cross-organ off in the demo
    # the paper's test-time overlap (grids/paper.toml): fewer false calls than 0.25 at little cost on 3 mm
    assert grid.evaluate["overlap"] == 0.75 and {c.hp()["val_overlap"] for c in cells} == {0.5}


def _fake_outcomes(tmp_path):
    outcomes = []
    for k, (organ, regime) in enumerate([("liver", "real"), ("kidney", "hu")]):
        folder = tmp_path / f"cell{k}"
        folder.mkdir()
        summary = {"mean": {"organ_dsc": 0.91 + k / 100, "tumor_dsc": 0.55}, "patient": {"specificity": 2 / 3,
                                                                                         "sensitivity": 0.9}}
        (folder / "summary.json").write_text(json.dumps(summary))
        outcomes.append(SimpleNamespace(status="finished", results_dir=str(folder),
                                        cell=SimpleNamespace(organ=organ, regime=regime)))
    return outcomes + [SimpleNamespace(status="failed", results_dir=str(tmp_path / "none"),
                                       cell=SimpleNamespace(organ="pancreas", regime="difftumor"))]


def test_run_demo_makes_checked_phantoms_then_runs_grid_contrast_and_report(tmp_path, monkeypatch):
    import benchmark.demo_contrast
    import benchmark.runner
    import benchmark.scorecard.run
    import reports.build
    from benchmark.demo_contrast import Contrast

    calls = []

    def fake_run_grid(grid_path, tracking_uri, progress, max_parallel):
        calls.append(("grid", Path(grid_path), tracking_uri, max_parallel))
        return _fake_outcomes(tmp_path)

    def fake_contrasts(dataset_dir, generator_kwargs, seed):
        calls.append(("contrast", Path(dataset_dir).name, generator_kwargs["checkpoint"]))
        return [Contrast(Path(dataset_dir).name, "real", 3, -40.0, 5.0, 40.0),
                Contrast(Path(dataset_dir).name, "difftumor", 3, -30.0, 5.0, 31.0)]

    def fake_build_report(out, options, progress):
        calls.append(("report", Path(out), options.experiment))
        return Path(out) / "index.html"

    def fake_scorecards(generators, datasets, out, *, generator_kwargs, settings, downstream, tracking_uri,
                        experiment, progress):
        calls.append(("scorecards", tuple(generators), [Path(d).name for d in datasets], settings.quick, downstream,
                      experiment, generator_kwargs["difftumor"]["liver"]["checkpoint"]))
        return SimpleNamespace(out=Path(out))

    monkeypatch.setattr(benchmark.runner, "run_grid", fake_run_grid)
    monkeypatch.setattr(benchmark.demo_contrast, "early_contrasts", fake_contrasts)
    monkeypatch.setattr(benchmark.scorecard.run, "run_scorecards", fake_scorecards)
    monkeypatch.setattr(reports.build, "build_report", fake_build_report)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = demo.DemoSettings(cases=10)
    result = demo.run_demo(tmp_path / "out", settings, tracking_uri=uri, progress=False)
    assert [c[0] for c in calls] == ["grid", "contrast", "contrast", "contrast", "scorecards", "report"]
    # the three generators' quick cards, with the downstream value of the grid just run, before the report
    assert calls[4][1:] == (("hu", "difftumor", "cellular"), ["liver"], True, demo.DEMO_EXPERIMENT,
                            demo.DEMO_EXPERIMENT, str(tmp_path / "out" / "results" / "generators" / "liver" / "fold_0"))
    assert calls[0][1:] == (tmp_path / "out" / "demo_grid.toml", uri, 3)  # three cells at a time on 2 cores (DemoSettings.max_parallel)
    assert calls[-1][2] == demo.DEMO_EXPERIMENT
    # other data than the shipped weights were trained on: the runner trains generators ("auto")
    assert "auto" in (tmp_path / "out" / "demo_grid.toml").read_text() and result.generators.startswith("trained")
    assert calls[1][2] == str(tmp_path / "out" / "results" / "generators" / "liver" / "fold_0")  # fold 0 only
    assert result.cells == {"finished": 2, "skipped": 0, "failed": 1}
    for organ in ("liver", "pancreas", "kidney"):
        assert (tmp_path / "out" / "phantom" / organ / ".tumorbench_check.json").is_file()  # checked
        assert json.loads((tmp_path / "out" / "phantom" / organ / "dataset.json").read_text())["spacing"] == [3.0] * 3
    assert any("phantom_kidney" in s and "5 folds" in s for s in result.dataset_summaries)
    assert set(result.seconds) == {"phantom data", "grid (9 cells)", "early-tumor contrast", "scorecards (quick)",
                                   "report"}
    assert result.scorecards == tmp_path / "out" / "scorecards" / "leaderboard.html"
    text = demo.format_demo_result(result)
    assert "2 finished, 0 skipped, 1 failed" in text and str(result.report_index) in text and uri in text
    lines = text.splitlines()
    assert any(line.split()[:5] == ["liver", "real", "0.91", "0.55", "0.67"] for line in lines)
    assert any(line.split()[:3] == ["kidney", "hu", "0.92"] for line in lines)
    assert any(line.split()[:2] == ["pancreas", "difftumor"] and "FAILED" in line for line in lines)
    assert any(line.split()[:2] == ["liver", "difftumor"] and line.split()[-1] == "9.0" for line in lines)


def test_shipped_generator_weights_match_the_tiny_presets():
    """benchmark/demo_weights holds what `tumorbench demo --make-generators` writes with today's presets."""
    from benchmark.demo_generators import SHIPPED_DIR, shipped_problems

    assert shipped_problems() == []
    assert sum(p.stat().st_size for p in SHIPPED_DIR.glob("*.pt")) < 8e6  # "a few MB" at most


def test_shipped_problems_names_a_changed_preset(tmp_path):
    import shutil

    from benchmark.demo_generators import SHIPPED_DIR, shipped_problems

    folder = tmp_path / "w"
    shutil.copytree(SHIPPED_DIR, folder)
    meta = json.loads((folder / "diffusion_kidney_early.json").read_text())
    meta["train"]["steps"] += 1
    (folder / "diffusion_kidney_early.json").write_text(json.dumps(meta))
    (folder / "diffusion_liver_nonearly.pt").unlink()
    problems = shipped_problems(folder)
    assert any("diffusion_kidney_early.json" in p and "train" in p for p in problems)
    assert any("diffusion_liver_nonearly.pt" in p for p in problems) and len(problems) == 2
    (folder / "autoencoder.pt").write_bytes(b"another autoencoder")
    assert "diffusion_pancreas_early.json: trained with another autoencoder.pt" in shipped_problems(folder)


def test_tumor_contrast_is_tumor_minus_organ_shell_beyond_the_edge():
    from benchmark.demo_contrast import tumor_contrast

    ct = np.full((20, 20, 20), 60.0, np.float32)
    organ = np.ones(ct.shape, bool)
    tumor = np.zeros(ct.shape, bool)
    tumor[8:12, 8:12, 8:12] = True
    ct[tumor] = 10.0
    from scipy import ndimage

    ct[ndimage.binary_dilation(tumor) & ~tumor] = 35.0  # partial-volume edge one voxel thick: not part of the shell
    ct[0] = -500.0  # beyond the shell (> 1 + 6 voxel-mm): ignored
    assert tumor_contrast(ct, tumor, organ, (1.0, 1.0, 1.0)) == pytest.approx(-50.0)
    assert tumor_contrast(ct, np.zeros_like(tumor), organ, (1.0, 1.0, 1.0)) is None


def test_report_header_says_what_was_run(tmp_path):
    from reports.run_scope import PUBLISHED_NOTE, TINY_DIFFTUMOR_NOTE, describe_run

    data = tmp_path / "liver"
    data.mkdir()
    (data / "dataset.json").write_text(json.dumps({"name": "phantom_liver", "source_format": "phantom",
                                                   "num_cases": 80, "spacing": [3.0, 3.0, 3.0]}))
    params = {"preset": "tiny", "epochs": "40", "iters_per_epoch": "40", "batch_size": "2", "crop_size": "[32, 32, 32]"}
    cells = {k: SimpleNamespace(organ="liver", fold=0, params=params, tags={"dataset_dir": str(data)})
             for k in range(3)}
    summary = {"patient": {"tp": 8, "fn": 2, "tn": 5, "fp": 1}}
    lines = describe_run(SimpleNamespace(cells=cells, summary=lambda cell: summary))
    assert lines[0] == ("liver: phantom_liver (phantom, 80 cases, 3×3×3 mm); test cases in fold 0: "
                        "16 (10 with tumor, 6 healthy)")
    assert "tiny" in lines[1] and "1600 iterations (40 epochs × 40)" in lines[1] and "3 cells" in lines[1]
    assert lines[-1] == PUBLISHED_NOTE and "patient CTs" in PUBLISHED_NOTE and "96³" in PUBLISHED_NOTE
    assert TINY_DIFFTUMOR_NOTE not in lines  # no DiffTumor cell


def test_report_header_says_when_difftumor_cells_use_tiny_generators(tmp_path):
    from benchmark.demo_generators import SHIPPED_DIR
    from reports.run_scope import TINY_DIFFTUMOR_NOTE, describe_run

    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "diffusion_liver_early.json").write_text(json.dumps({"preset": "paper"}))
    base = {"preset": "tiny", "epochs": "1", "iters_per_epoch": "1", "generator.name": "difftumor"}
    expected = {str(SHIPPED_DIR): True, "auto": True, str(paper): False}
    for checkpoint, tiny in expected.items():
        cell = SimpleNamespace(organ="liver", fold=0, params=dict(base, **{"generator.checkpoint": checkpoint}),
                               tags={})
        lines = describe_run(SimpleNamespace(cells={0: cell}, summary=lambda cell: None))
        assert (TINY_DIFFTUMOR_NOTE in lines) is tiny, checkpoint
    hu = SimpleNamespace(organ="liver", fold=0, params=dict(base, **{"generator.name": "hu"}), tags={})
    assert TINY_DIFFTUMOR_NOTE not in describe_run(SimpleNamespace(cells={0: hu}, summary=lambda cell: None))


def test_demo_cli_rejects_bad_sizes_before_doing_anything(tmp_path, capsys):
    from benchmark.cli import main

    for argv in (["--cases", "9"], ["--epochs", "0"], ["--max-parallel", "0"]):
        assert main(["demo", "--out", str(tmp_path / "out"), *argv]) == 2
        assert capsys.readouterr().err.startswith(f"tumorbench: error: {argv[0]} ")
    assert not (tmp_path / "out").exists()


def test_autoencoder_row_is_the_real_tumors_after_the_generators_autoencoder(tmp_path, monkeypatch):
    """The row measures the real early tumors through the checkpoint's autoencoder on crops of the early
    model's size: an identity autoencoder gives the real contrasts back, a constant one none at all."""
    import torch

    from benchmark.data import Dataset
    from benchmark.data.phantom import generate_phantom_dataset
    from benchmark.demo_contrast import autoencoder_early_contrast, early_tumors, real_early_contrast
    from benchmark.demo_generators import SHIPPED_DIR
    from synthesis.difftumor.autoencoder import VQAutoencoder

    generate_phantom_dataset(tmp_path / "liver", "liver", 10, seed=0, spacing=(3.0,) * 3, tumor_fraction=1.0,
                             progress=False)
    dataset = Dataset.open(tmp_path / "liver")
    tumors = early_tumors(dataset, dataset.case_ids("labeled"))
    real = real_early_contrast(dataset, tumors)
    assert real.n >= 2 and real.mean_hu < -20
    shapes = []
    monkeypatch.setattr(VQAutoencoder, "encode", lambda self, image: shapes.append(tuple(image.shape)) or image)
    monkeypatch.setattr(VQAutoencoder, "decode", lambda self, latent, quantize=True: latent)
    same = autoencoder_early_contrast(dataset, tumors, SHIPPED_DIR)
    assert set(shapes) == {(1, 1, 32, 32, 32)} and len(shapes) == real.n  # the early model's crop, per tumor
    assert (same.source, same.n) == ("autoencoder", real.n)
    assert same.mean_hu == pytest.approx(real.mean_hu, abs=1e-2) and same.sd_hu == pytest.approx(real.sd_hu, abs=1e-2)
    monkeypatch.setattr(VQAutoencoder, "decode", lambda self, latent, quantize=True: torch.zeros_like(latent))
    assert autoencoder_early_contrast(dataset, tumors, SHIPPED_DIR).mean_abs_hu == pytest.approx(0.0, abs=1e-3)
