"""Scorecard pages in headless Chromium from file://: no console error, every image loads, the
leaderboard sorts by mouse and its links open the cards; a screenshot renders."""
from __future__ import annotations

from pathlib import Path

import pytest

from _scorecard_fixtures import hand_cards
from test_reader_study_browser import CHROMIUM
from test_report_browser import COLUMN, Recorder

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs headless Chromium at {CHROMIUM}")]

IMAGES = ("Array.prototype.map.call(document.images, function (i) {"
          "return [i.getAttribute('src'), i.complete && i.naturalWidth > 0]; })")


@pytest.fixture(scope="module")
def cards_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cards")
    hand_cards(out)
    return out


@pytest.fixture
def browser(tmp_path):
    with Recorder(tmp_path / "profile") as tools:
        yield tools


@pytest.mark.parametrize("page", ["leaderboard.html", "hu/liver/card.html", "difftumor/liver/card.html"])
def test_pages_load_without_errors_and_images_load(cards_dir, browser, page):
    browser.open((cards_dir / page).as_uri())
    assert browser.errors() == [] and browser.js("window.tbErrors.length") == 0
    images = browser.js(IMAGES)
    assert [src for src, ok in images if not ok] == []
    if page.startswith("hu/"):
        assert [src for src, _ in images] == ["img/fidelity.png"]
        row = browser.js("Array.prototype.map.call(document.querySelector('table[data-table=\"downstream\"]')"
                         ".tBodies[0].rows[0].cells, function (td) { return td.textContent; })")
        assert row[:6] == ["unet", "DSC", "60.0", "62.5", "+2.5", "[-1.0, +6.0]"] and "liver × DSC" in row
    assert browser.js("Array.prototype.every.call(document.querySelectorAll('table.sortable thead th'),"
                      "function (th) { return th.querySelector('button.sort') !== null; })")


def test_leaderboard_sorts_and_links_to_cards(cards_dir, browser):
    browser.open((cards_dir / "leaderboard.html").as_uri())
    heads = "document.querySelector('table[data-table=\"leaderboard\"]').tHead.rows[0].cells"
    index = browser.js(f"Array.prototype.map.call({heads}, function (th) {{ return th.textContent; }})"
                       ".indexOf('time vs Hu')")
    browser.click(f"{heads}[{index}].querySelector('button')")
    column = browser.js(COLUMN % ("leaderboard", "time vs Hu"))
    assert column["sort"] == "ascending"
    assert column["keys"] == ["1.0", "2.0", ""]  # the refused card has no score and sorts last
    links = browser.js("Array.prototype.map.call(document.querySelectorAll('td a'), function (a) { return a.href; })")
    assert sorted(Path(link.removeprefix("file://")).relative_to(cards_dir).as_posix() for link in links) == [
        "difftumor/liver/card.html", "hu/liver/card.html", "sphere/liver/card.html"]
    assert all(Path(link.removeprefix("file://")).is_file() for link in links)
