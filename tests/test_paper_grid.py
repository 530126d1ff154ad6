"""grids/paper.toml is the supplement's protocol: 135 main + 180 cross-organ cells, and every
setting of docs/protocol.md's table (the paper's E.2 values) reaches the cells' TrainConfig."""
from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from benchmark.cell import cells_from_grid
from benchmark.grid import load_grid
from benchmark.stages import make_train_config

ROOT = Path(__file__).resolve().parents[1]


def _settings_table() -> list[tuple[str, str, object]]:
    """(setting, grid key, value) rows of the 'Paper settings' table of docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Paper settings", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[a-z_.]+", cells[2]) and cells[2] != "grid":
            rows.append((cells[0], cells[2], tomllib.loads(f"v = {cells[3]}")["v"]))
    return rows


@pytest.fixture(scope="module")
def paper():
    grid = load_grid(ROOT / "grids" / "paper.toml")
    return grid, cells_from_grid(grid, {o: "fp" for o in grid.datasets})


def test_paper_grid_has_135_main_and_180_cross_organ_cells(paper):
    grid, cells = paper
    main = [c for c in cells if not c.cross_organ]
    cross = [c for c in cells if c.cross_organ]
    assert len(main) == 135 and len(cross) == 180 and len({c.hash for c in cells}) == 315
    assert Counter((c.organ, c.backbone, c.regime) for c in main) == {
        (o, b, r): 5 for o in ("liver", "pancreas", "kidney") for b in ("unet", "nnunet", "swin_unetr")
        for r in ("real", "hu", "difftumor")}
    assert {c.regime for c in cross} == {"hu", "difftumor"}
    assert Counter((c.synth_source, c.organ) for c in cross) == {
        (s, t): 30 for s in ("liver", "pancreas", "kidney") for t in ("liver", "pancreas", "kidney") if s != t}
    pancreas_from_liver = [c for c in cross if c.organ == "pancreas" and c.synth_source == "liver"
                           and c.regime == "difftumor" and c.backbone == "unet"]
    # the source organ's checkpoint of the cell's own fold
    assert {c.fold: c.generator_config()["checkpoint"][-len("liver/fold_0"):] for c in pancreas_from_liver} == {
        k: f"liver/fold_{k}" for k in range(5)}
    pancreas_from_liver = pancreas_from_liver[0]
    assert pancreas_from_liver.training_roles() == ("healthy",)


def test_every_documented_paper_setting_is_in_the_grid(paper):
    grid, cells = paper
    raw = tomllib.loads((ROOT / "grids" / "paper.toml").read_text())
    rows = _settings_table()
    assert len(rows) >= 18, "docs/protocol.md lost rows of its settings table"
    for setting, key, value in rows:
        node = raw
        for part in key.split("."):
            node = node[part]
        assert node == value, f"{setting}: grids/paper.toml {key} = {node!r}, docs/protocol.md says {value!r}"


def test_paper_settings_reach_each_regimes_train_config(paper):
    grid, cells = paper
    configs = {}
    for regime in ("real", "hu", "difftumor"):
        cell = next(c for c in cells if c.regime == regime and c.backbone == "nnunet")
        configs[regime] = make_train_config(cell.backbone, cell.preset, cell.seed, cell.hp(), spacing=(1, 1, 1))
    assert configs["real"].epochs == 3000 and configs["hu"].epochs == configs["difftumor"].epochs == 2000
    for config in configs.values():
        assert (config.lr, config.batch_size, config.warmup_epochs, config.iters_per_epoch) == (2e-4, 2, 100, None)
        assert config.window == (-175.0, 250.0) and config.crop_size == (96, 96, 96)
        assert (config.rot90_prob, config.shift_prob, config.pos_fraction) == (0.2, 0.15, 0.5)
    assert grid.evaluate["overlap"] == 0.75 and grid.evaluate["organ_postprocess"] is True
    assert grid.evaluate["organ_filter"] == "reference" and grid.evaluate["patient_threshold_mm3"] == 70.0
    assert "Tables 1-3" not in grid.source
