"""`tumorbench scorecard`: fidelity quantities right by construction, the example sphere plug-in's card,
copies of real tumors at the realism floor, refusals, the MLflow run and the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from _scorecard_fixtures import (engineering_ok, engineering_refusing, forget_modules, install_copy_generator,
                                 toy_dataset)
from test_generators_plugins import plugin_site  # noqa: F401 (fixture: the example package installed)

SPHERE_RADIUS_MM = 6.0


def _ball(shape, centre, radius_vox):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius_vox ** 2


def test_measure_case_quantities_of_a_known_tumor():
    from benchmark.scorecard.fidelity import measure_case

    shape, spacing = (60, 60, 60), (1.0, 1.0, 1.0)
    organ = np.zeros(shape, bool)
    organ[10:50, 10:50, 10:50] = True
    ct = np.where(organ, 100.0, -100.0).astype(np.float32)
    labels = organ.astype(np.uint8)
    inner = _ball(shape, (30, 30, 30), 6)  # embedded: 14 mm from the nearest face (x = 10 or 49)
    bulging = _ball(shape, (10, 30, 30), 5)  # centred on a face: half of it outside the organ
    labels[inner | bulging] = 2
    ct[inner] -= 40.0
    ct[bulging] -= 40.0
    rows = sorted(measure_case(ct, labels, spacing, given_organ=organ), key=lambda r: -r["surface_distance_mm"])
    inside, outside = rows
    assert [r["lesions_per_case"] for r in rows] == [2, 2]
    assert inside["radius_mm"] == pytest.approx((3 * inner.sum() / (4 * math.pi)) ** (1 / 3))
    assert abs(inside["radius_mm"] - 6.0) < 0.2
    assert inside["surface_distance_mm"] == pytest.approx(20.0)  # organ region = labels > 0: x 10..49
    assert inside["exophytic_fraction"] == 0.0 and inside["outside_given_organ"] == 0.0
    assert inside["contrast_hu"] == pytest.approx(-40.0) and inside["hu_sd"] == 0.0
    assert 0.3 < outside["exophytic_fraction"] < 0.7  # about half of its boundary faces background
    assert outside["outside_given_organ"] == pytest.approx((bulging & ~organ).sum() / bulging.sum())
    # the organ region includes the tumor: the nearest background lies past its own bulge
    assert 0.0 < outside["surface_distance_mm"] < 5.5 < 14.0 < inside["surface_distance_mm"]


def test_cliffs_delta_and_its_test():
    from benchmark.scorecard.fidelity import cliffs_delta

    assert cliffs_delta(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))[0] == 1.0
    assert cliffs_delta(np.array([4.0, 5, 6]), np.array([1.0, 2, 3]))[0] == -1.0
    delta, p = cliffs_delta(np.arange(20.0), np.arange(20.0) + 0.5)
    assert delta == pytest.approx(2 * (210 - 20 + 20) / 400 - 1, abs=0.06) and p > 0.5
    assert cliffs_delta(np.ones(5), np.ones(4)) == (0.0, 1.0)


def _settings(n: int | None, n_repeats: int, n_draws: int):
    from benchmark.scorecard.realism import RealismSettings
    from benchmark.scorecard.run import ScorecardSettings

    return ScorecardSettings(RealismSettings(n=n, n_perm=0, n_repeats=n_repeats, resample_mm=None, size_bins=False),
                             n_draws=n_draws)


def _run(tmp, dataset, generators, kwargs, settings, engineering, sites):
    from benchmark.scorecard.run import run_scorecards

    with pytest.MonkeyPatch.context() as mp:
        for site in sites:
            mp.syspath_prepend(str(site))
        mp.chdir(tmp)  # MLflow's local artifact root
        result = run_scorecards(generators, [dataset], tmp / "cards", generator_kwargs=kwargs, settings=settings,
                                engineering=engineering, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", progress=False)
    forget_modules("tumorbench_sphere")
    forget_modules("tumorbench_copyreal")
    return result, {c["generator"]: c for c in result.cards}


@pytest.fixture(scope="module")
def sphere_cards(plugin_site, tmp_path_factory):  # noqa: F811
    """The example sphere plug-in (radius fixed at 6 mm) scored, and Hu refused by its engineering section."""
    tmp = tmp_path_factory.mktemp("scorecard")
    dataset = toy_dataset(tmp / "liver")
    kwargs = {"sphere": {"liver": {"radius_mm": [SPHERE_RADIUS_MM, SPHERE_RADIUS_MM]}}}
    return _run(tmp, dataset, ["sphere", "hu"], kwargs, _settings(6, 2, 16), engineering_refusing("hu"),
                [plugin_site])


def test_sphere_card_fidelity_is_right_by_construction(sphere_cards):
    import pandas as pd

    result, cards = sphere_cards
    card = cards["sphere"]
    assert card["status"] == "scored" and card["refusals"] == []
    rows = pd.read_csv(result.out / "sphere" / "liver" / "fidelity.csv")
    sphere = rows[rows.source == "sphere"]
    assert len(sphere) == card["settings"]["n_draws"]  # one tumor per call, every call measured
    assert (sphere.lesions_per_case == 1).all()
    assert (sphere.outside_given_organ == 0.0).all() and card["fidelity"]["outside_given_organ_max"] == 0.0
    whole = sphere[sphere.surface_distance_mm >= SPHERE_RADIUS_MM + 4.0]  # 2 voxels clear of the surface
    assert len(whole) >= 3
    # a 6 mm ball on the 2 mm grid holds 123 voxels: equivalent radius 6.17 mm
    assert np.allclose(whole.radius_mm, (3 * 123 * 8 / (4 * math.pi)) ** (1 / 3), atol=1e-6)
    assert (whole.exophytic_fraction == 0.0).all()
    assert (sphere.radius_mm <= 6.2).all()  # clipping only removes voxels
    # 60 HU removed at full weight, less in the 2 mm soft edge; the ring outside keeps < 30 HU of it
    assert -60.0 <= whole.contrast_hu.median() <= -35.0
    tests = {t["quantity"]: t for t in card["fidelity"]["tests"]}
    assert tests["radius_mm"]["generator"]["median"] == pytest.approx(sphere.radius_mm.median())
    assert tests["lesions_per_case"]["generator"]["median"] == 1.0
    assert tests["lesions_per_case"]["real"]["median"] == 2.0  # the toy dataset has 2 tumors per labeled case
    assert tests["lesions_per_case"]["cliffs_delta"] == -1.0  # every real case has more lesions
    assert (result.out / "sphere" / "liver" / "img" / "fidelity.png").stat().st_size > 10_000


@pytest.mark.slow
def test_copies_of_real_tumors_score_at_the_realism_floor(tmp_path):
    """Pasted real tumors (exact HU and shape) score at the real-vs-real floor; the same with a
    tripled texture is far above it (so the check can fail)."""
    dataset = toy_dataset(tmp_path / "liver")
    site = install_copy_generator(tmp_path / "site")
    kwargs = {name: {"liver": {"source": str(dataset)}} for name in ("copyreal", "copyreal_loud")}
    _, cards = _run(tmp_path, dataset, ["copyreal", "copyreal_loud"], kwargs, _settings(None, 20, 4), engineering_ok,
                    [site])
    copy = next(r for r in cards["copyreal"]["realism"] if r["size_bin"] == "all")
    loud = next(r for r in cards["copyreal_loud"]["realism"] if r["size_bin"] == "all")
    assert copy["n_matched"] >= 10
    for name in ("c2st_auc", "frechet_pca"):
        noise = copy[f"{name}_floor_sd"]
        assert copy[f"{name}_matched"] <= copy[f"{name}_floor"] + 0.5 * noise, name
        assert loud[f"{name}_matched"] > loud[f"{name}_floor"] + 2.0 * noise, name


def test_leaderboard_json_and_mlflow_run(sphere_cards):
    from mlflow.tracking import MlflowClient

    result, cards = sphere_cards
    html = (result.out / "leaderboard.html").read_text()
    for name in cards:
        assert f'href="{name}/liver/card.html"' in html
        card = json.loads((result.out / name / "liver" / "scorecard.json").read_text())
        assert card == cards[name]
    client = MlflowClient(tracking_uri=f"sqlite:///{result.out.parent / 'mlflow.db'}")
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["tumorbench.kind"] == "scorecard"
    assert run.data.metrics["c2st_auc_matched_liver_sphere"] == pytest.approx(
        cards["sphere"]["headline"]["c2st_auc_matched"])
    assert run.data.metrics["refused_liver_hu"] == 1.0 and run.data.tags["tumorbench.refused"] == "hu/liver"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"leaderboard.html", "scorecards.json", "sphere", "hu"} <= names
    assert {a.path for a in client.list_artifacts(run.info.run_id, "sphere/liver")} >= {
        "sphere/liver/card.html", "sphere/liver/scorecard.json", "sphere/liver/fidelity.csv"}


def test_a_refused_generator_gets_a_refused_card_and_no_scores(sphere_cards):
    result, cards = sphere_cards
    assert result.refused == {"hu/liver": ["consistency: 2 reported tumors have an empty mask on the 3 mm CT"]}
    assert cards["hu"]["status"] == "refused"
    assert cards["hu"]["realism"] == [] and cards["hu"]["fidelity"] is None and cards["hu"]["headline"] is None
    html = (result.out / "hu" / "liver" / "card.html").read_text()
    assert "REFUSED" in html and "empty mask on the 3 mm CT" in html and 'id="realism"' not in html
    assert not (result.out / "hu" / "liver" / "fidelity.csv").exists()
    board = (result.out / "leaderboard.html").read_text()
    assert "REFUSED" in board and "empty mask on the 3 mm CT" in board


def test_cli_help_and_bad_input(tmp_path, capsys):
    from benchmark.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["scorecard", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--downstream GRID" in text and "REFUSED" in text and "leaderboard.html" in text
    dataset = toy_dataset(tmp_path / "liver", n_labeled=3, n_healthy=2)
    assert main(["scorecard", "no_such_generator", "--dataset", str(dataset), "--out", str(tmp_path / "o")]) == 2
    assert "unknown generator 'no_such_generator'" in capsys.readouterr().err
    assert main(["scorecard", "hu", "--dataset", str(dataset), "--organ", "kidney", "--out", str(tmp_path / "o")]) == 2
    assert "--organ kidney" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_exits_3_and_names_the_reasons_when_a_generator_is_refused(tmp_path, capsys, monkeypatch):
    import benchmark.scorecard.run as scorecard_run
    from benchmark.cli import main

    monkeypatch.setattr(scorecard_run, "_engineering_default", lambda: engineering_refusing("hu"))
    monkeypatch.chdir(tmp_path)
    dataset = toy_dataset(tmp_path / "liver", n_labeled=3, n_healthy=2)
    code = main(["scorecard", "hu", "--dataset", str(dataset), "--out", str(tmp_path / "cards"), "--quick",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    captured = capsys.readouterr()
    assert code == 3
    assert "hu/liver REFUSED: consistency: 2 reported tumors have an empty mask on the 3 mm CT" in captured.err
    assert "REFUSED" in captured.out and (tmp_path / "cards" / "leaderboard.html").is_file()


def test_engineering_rows_of_the_card():
    from reports.scorecard_html import engineering_rows, timing_columns

    eng = {"generator": "hu", "organ": "liver", "seed": 0, "quick": True, "refusals": [],
           "timing": {"0-5": {"ms_per_tumor": 2.0, "hu_ms_per_tumor": 1.0, "ratio": 2.0},
                      "20+": {"error": "organ too small"}},
           "peak_memory_mb": 120.0, "replay": {"ok": True, "detail": "bit-identical"},
           "consistency": {"1 mm": {"ok": True}, "3 mm": {"ok": False, "empty_masks": 1}},
           "exophytic": {"ok": True, "bone_voxels": 0}}
    timing, checks = engineering_rows(eng)
    assert timing_columns(eng) == ["size bin", "ms_per_tumor", "hu_ms_per_tumor", "ratio", "error"]
    assert [c["text"] for c in timing[1]] == ["20+", "—", "—", "—", "organ too small"]
    verdicts = {row[0]["text"]: row[1]["text"] for row in checks}
    assert verdicts == {"peak_memory_mb": "—", "replay": "yes", "consistency": "NO", "exophytic": "yes"}
