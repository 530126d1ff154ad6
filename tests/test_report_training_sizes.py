"""Report header (issue 27): n training CTs per regime beside the paper's, read from MLflow, and one
sentence when a generator's training data are unknown (read from cases_used.json)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from test_protocol_folds import _checkpoint, _difftumor_grid, _run, RECORDING
from test_runner_fakes import fresh_tracking_uri


def test_header_states_training_cases_per_regime_next_to_the_papers(tmp_path):
    from reports.loader import load_grid
    from reports.run_scope import describe_run

    cells, _, uri = _run(tmp_path)
    lines = describe_run(load_grid(uri, "folds"))
    line = next(x for x in lines if x.startswith("Training CTs per cell"))
    expected = {}
    for (organ, regime, source), folder in cells.items():
        used = json.loads((folder / "cases_used.json").read_text())
        expected[(organ, regime, source)] = f"{used['n_train_tumor_cases']} tumor + {used['n_train_healthy_cases']} healthy"
    assert f"liver real {expected[('liver', 'real', 'liver')]} (paper 95 + 0)" in line
    assert f"liver hu {expected[('liver', 'hu', 'liver')]} (paper 95 + 116)" in line
    assert f"pancreas hu←liver {expected[('pancreas', 'hu', 'liver')]} (paper 0 + 104)" in line
    assert expected[("pancreas", "hu", "liver")].startswith("0 tumor")  # no real tumor of the target
    assert line.endswith("(final checkpoint).")


def _header(tmp_path, meta: dict) -> list[str]:
    from reports.loader import load_grid
    from reports.run_scope import describe_run

    ckpt = _checkpoint(tmp_path / "ckpt", "liver", **meta)
    grid, _ = _difftumor_grid(tmp_path, ckpt)
    uri = fresh_tracking_uri(tmp_path)
    from benchmark.runner import run_grid

    run_grid(grid, tracking_uri=uri, stages=RECORDING, progress=False)
    return describe_run(load_grid(uri, "prov"))


def test_header_says_when_a_generators_training_data_are_unknown(tmp_path):
    import hashlib

    lines = _header(tmp_path / "published", {})
    sha = hashlib.sha256(b"autoencoder").hexdigest()[:12]
    unknown = [x for x in lines if "do not record what they were trained on" in x]
    assert len(unknown) == 1 and sha in unknown[0] and "1 cell(s)" in unknown[0]
    stated = _header(tmp_path / "stated", {"trained_on": "fold 0 training cases of the demo phantom", "fold": 0,
                                           "dataset": "fake-liver"})
    assert not any("do not record" in x for x in stated)
    recorded = _header(tmp_path / "recorded", {"train_case_ids": ["liver_001"], "fold": 0, "dataset": "fake-liver"})
    assert not any("do not record" in x for x in recorded)


def test_no_sentence_for_generators_without_weights():
    from reports.training_sizes import unknown_generator_line

    hu = SimpleNamespace(params={"generator.name": "hu"}, tags={}, metrics={})
    real = SimpleNamespace(params={}, tags={}, metrics={})
    assert unknown_generator_line(SimpleNamespace(cells={0: hu, 1: real})) is None
    old = SimpleNamespace(params={"generator.checkpoint": "/ckpt"}, tags={"results_dir": str(Path("/nonexistent"))},
                          metrics={})
    assert "1 cell(s)" in unknown_generator_line(SimpleNamespace(cells={0: old}))
