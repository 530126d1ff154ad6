"""The scorecard's downstream value read from a grid's MLflow runs (the report's paired comparison, no
training) and the grid report's scorecard section linking the cards of a scorecard run."""
from __future__ import annotations

import pytest

from _scorecard_fixtures import hand_cards
from test_report_fakegrid import build_fake_grid


@pytest.fixture(scope="module")
def fake_grid(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    return build_fake_grid(tmp), tmp


def test_downstream_is_the_reports_paired_comparison_real_vs_generator(fake_grid):
    from benchmark.scorecard.downstream import downstream_section, load_per_case
    from reports.inference import paired_table

    grid, _ = fake_grid
    experiment, per_case = load_per_case(grid["experiment"], grid["uri"])
    assert experiment == "fake_grid"
    section = downstream_section(per_case, experiment, "difftumor", "liver", seed=0, n_boot=200)
    table = paired_table(per_case, 0, 200)
    names = [c.name for c in table.columns]
    report_rows = [dict(zip(names, r)) for r in table.rows if r[0] == "liver" and r[4] == "difftumor"]
    assert [(r["metric"], r["a"], r["b"]) for r in section["rows"]] == [("DSC", "real", "difftumor"),
                                                                        ("NSD", "real", "difftumor")]
    for row, expected in zip(section["rows"], report_rows):
        assert row["delta"] == pytest.approx(expected["Δ B−A"]) and row["p_holm"] == pytest.approx(expected["Holm p"])
        assert row["delta"] == pytest.approx(row["mean_b"] - row["mean_a"]) and row["n_cases"] > 0
        assert row["ci"][0] <= row["delta"] <= row["ci"][1]
    missing = downstream_section(per_case, experiment, "hu", "liver", n_boot=200)
    assert missing["rows"] == [] and "'hu'" in missing["missing"] and "found: real, difftumor)" in missing["missing"]


def test_grid_experiment_from_a_grid_file(tmp_path):
    from benchmark.errors import InputError
    from benchmark.scorecard.downstream import grid_experiment

    assert grid_experiment("my_experiment") == "my_experiment"
    with pytest.raises(InputError, match="grid file not found"):
        grid_experiment(str(tmp_path / "missing.toml"))


def test_report_section_links_the_cards_of_the_grids_scorecard_run(fake_grid, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from benchmark.scorecard.publish import log_scorecard_run
    from reports.loader import load_grid
    from reports.scorecard_report import scorecard_section

    grid_info, _ = fake_grid
    grid = load_grid(grid_info["uri"], grid_info["experiment"])
    assert scorecard_section(grid, tmp_path / "before") is None  # no scorecard run yet
    cards = hand_cards(tmp_path / "cards")
    monkeypatch.chdir(tmp_path)
    log_scorecard_run(SimpleNamespace(out=tmp_path / "cards", cards=cards, refused={"difftumor/liver": ["x"]}),
                      grid_info["experiment"], grid_info["uri"])
    section = scorecard_section(grid, tmp_path / "report")
    assert section is not None and "leaderboard" in section.html
    for generator in ("hu", "sphere", "difftumor"):
        assert f'href="scorecards/{generator}/liver/card.html"' in section.html
        assert (tmp_path / "report" / "scorecards" / generator / "liver" / "card.html").is_file()
    assert (tmp_path / "report" / "scorecards" / "hu" / "liver" / "img" / "fidelity.png").is_file()
