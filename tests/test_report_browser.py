"""The rendered report in headless Chromium, driven over the DevTools protocol with real input events:
the page loads with no console error, every image loads, tables sort by mouse and by keyboard
(Tab to a header, Enter / Space) with ``aria-sort``, and a screenshot renders.

Skipped with a reason when /usr/bin/chromium is absent (CI installs it: .ci/chromium_up.sh).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from test_reader_study_browser import CHROMIUM, DevTools
from test_report_fakegrid import build_fake_grid

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"needs headless Chromium at {CHROMIUM} (apt-get install -y chromium; "
                                        "CI: .ci/chromium_up.sh)")]

READY = "document.readyState === 'complete' && document.body.getAttribute('data-report-ready') === '1'"
COLUMN = """(function (key, name) {
  var t = document.querySelector('table[data-table="' + key + '"]');
  var heads = Array.prototype.map.call(t.tHead.rows[0].cells, function (th) { return th.textContent; });
  var i = heads.indexOf(name);
  return {index: i, sort: t.tHead.rows[0].cells[i].getAttribute('aria-sort'),
          keys: Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[i].getAttribute('data-sort'); })};
})(%r, %r)"""


class Recorder(DevTools):
    """DevTools client that keeps the protocol events (console messages, exceptions, log entries)."""

    def __init__(self, profile: Path):
        super().__init__(profile)
        self.events: list[dict] = []

    def _receive(self) -> dict:
        message = super()._receive()
        if "method" in message:
            self.events.append(message)
        return message

    def __enter__(self) -> "Recorder":
        try:
            self.attach_page()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def errors(self) -> list[str]:
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(str(params["exceptionDetails"].get("exception", {}).get("description")
                               or params["exceptionDetails"].get("text")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(params["entry"]["text"] + " " + params["entry"].get("url", ""))
        return out

    def open(self, url: str) -> None:
        self.send("Runtime.enable")
        self.send("Log.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_for(READY)

    def press(self, key: str, code: str, keycode: int, text: str = "") -> None:
        base = {"key": key, "code": code, "windowsVirtualKeyCode": keycode}
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **base, **({"text": text} if text else {})})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def click(self, selector_js: str) -> None:
        """A real mouse click at the centre of the element that ``selector_js`` evaluates to."""
        box = self.js(f"(function () {{ var e = {selector_js}; e.scrollIntoView({{block: 'center'}});"
                      "var r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from reports.build import ReportOptions, build_report

    tmp = tmp_path_factory.mktemp("browser")
    grid = build_fake_grid(tmp)
    return build_report(tmp / "report", ReportOptions(tracking_uri=grid["uri"]), progress=False)


@pytest.fixture
def browser(tmp_path):
    with Recorder(tmp_path / "profile") as tools:
        yield tools


def _numbers(keys: list[str]) -> list[float]:
    return [float(k) for k in keys if k != ""]


def test_page_loads_without_console_errors_and_every_image_loads(rendered, browser):
    browser.open(rendered.as_uri())
    assert browser.errors() == [] and browser.js("window.tbErrors.length") == 0
    images = browser.js("Array.prototype.map.call(document.images, function (i) {"
                        "return [i.getAttribute('src'), i.complete && i.naturalWidth > 0]; })")
    assert len(images) >= 10 and [src for src, ok in images if not ok] == []
    # every data table has a caption, every sortable header a focusable button
    assert browser.js("Array.prototype.every.call(document.querySelectorAll('table.sortable'),"
                      "function (t) { return t.caption && t.caption.textContent.trim().length > 0; })")
    assert browser.js("Array.prototype.every.call(document.querySelectorAll('table.sortable thead th'),"
                      "function (th) { return th.querySelector('button.sort') !== null; })")


def test_sorting_by_mouse(rendered, browser):
    """Clicks on a header sort numerically (25 < 50 < 75 < 100, which text order would get wrong)."""
    browser.open(rendered.as_uri())
    table, name = "table3_unet", "→ pancreas"
    header = "document.querySelector('table[data-table=\"%s\"]').tHead.rows[0].cells[%d].querySelector('button')"
    index = browser.js(COLUMN % (table, name))["index"]
    browser.click(header % (table, index))
    col = browser.js(COLUMN % (table, name))
    assert col["sort"] == "ascending" and _numbers(col["keys"]) == [25.0, 50.0, 75.0, 100.0]
    browser.click(header % (table, index))
    col = browser.js(COLUMN % (table, name))
    assert col["sort"] == "descending" and _numbers(col["keys"]) == [100.0, 75.0, 50.0, 25.0]
    assert browser.errors() == []


def test_sorting_by_keyboard(rendered, browser):
    """Tab moves focus onto the header buttons; Enter sorts ascending, Space then descending."""
    browser.open(rendered.as_uri())
    before = browser.js(COLUMN % ("paired", "Wilcoxon p"))
    assert before["sort"] is None
    browser.js("document.querySelector('table[data-table=\"paired\"]').tHead.rows[0].cells[%d - 1]"
               ".querySelector('button').focus()" % before["index"])
    browser.press("Tab", "Tab", 9)
    assert browser.js("document.activeElement.textContent") == "Wilcoxon p"
    browser.press("Enter", "Enter", 13, "\r")
    col = browser.js(COLUMN % ("paired", "Wilcoxon p"))
    assert col["sort"] == "ascending" and _numbers(col["keys"]) == sorted(_numbers(col["keys"]))
    browser.press(" ", "Space", 32, " ")
    col = browser.js(COLUMN % ("paired", "Wilcoxon p"))
    assert col["sort"] == "descending" and _numbers(col["keys"]) == sorted(_numbers(col["keys"]), reverse=True)
    # only the sorted header carries aria-sort
    assert browser.js("document.querySelectorAll('table[data-table=\"paired\"] th[aria-sort]').length") == 1


def test_error_probe_detects_script_errors(rendered, browser):
    """The recorder really sees a script error and a missing image (so the tests above can fail)."""
    broken = rendered.parent / "broken.html"
    broken.write_text(rendered.read_text().replace("</body>", '<img src="img/nope.png" alt="x">'
                                                   "<script>undefinedFunction();</script></body>"))
    browser.open(broken.as_uri())
    errors = browser.errors()
    assert any("undefinedFunction" in e for e in errors) and any("nope.png" in e for e in errors)


def test_screenshot(rendered, browser):
    import base64

    browser.send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 2000, "deviceScaleFactor": 1,
                                                        "mobile": False})
    browser.open(rendered.as_uri())
    png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"})["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    (rendered.parent / "screenshot.png").write_bytes(png)
