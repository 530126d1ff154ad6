"""Load the rendered report in headless Chromium: no script errors, images load, sorting works.

Run with:  OMP_NUM_THREADS=1 python -m pytest tests/test_report_browser.py -m browser -q
(skipped when /usr/bin/chromium is absent; install with `apt-get install -y chromium`).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_report_fakegrid import build_fake_grid

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium")]

# Test-only probe appended to a copy of index.html: after load it sorts one table by a numeric
# column and records image loading and the resulting order in the DOM for --dump-dom to read.
PROBE = """
<script>
window.addEventListener("load", function () {
  var out = document.createElement("pre"); out.id = "probe";
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.src; });
  var table = document.querySelector('table[data-table="table4_liver"]');
  var heads = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) { return th.textContent; });
  var col = heads.indexOf("mean");
  table.tHead.rows[0].cells[col].click();
  var asc = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[col].getAttribute("data-sort"); });
  table.tHead.rows[0].cells[col].click();
  var desc = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[col].getAttribute("data-sort"); });
  out.textContent = "IMAGES=" + imgs.length + "\\nBROKEN=" + broken.join(",") + "\\nASC=" + asc.join(",") + "\\nDESC=" + desc.join(",");
  document.body.appendChild(out);
});
</script>
"""


def chromium(args: list[str], user_dir: Path) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={user_dir}",
           "--enable-logging=stderr", "--v=0", "--allow-file-access-from-files", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def js_errors(dom: str) -> str:
    match = re.search(r'<div id="js-errors"[^>]*>(.*?)</div>', dom, re.S)
    assert match, "error box missing from the DOM"
    return match.group(1).strip()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from reports.build import ReportOptions, build_report

    tmp = tmp_path_factory.mktemp("browser")
    grid = build_fake_grid(tmp)
    return build_report(tmp / "report", ReportOptions(tracking_uri=grid["uri"]), progress=False)


def test_report_loads_without_errors_and_sorts(rendered, tmp_path):
    probe_page = rendered.parent / "probe.html"
    probe_page.write_text(rendered.read_text().replace("</body>", PROBE + "</body>"))
    result = chromium(["--virtual-time-budget=10000", "--dump-dom", probe_page.as_uri()], tmp_path / "ud")
    dom = result.stdout
    assert 'data-report-ready="1"' in dom, result.stderr[-2000:]
    assert js_errors(dom) == "" and not console_errors(result.stderr)
    probe = dict(line.split("=", 1) for line in re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).splitlines())
    assert int(probe["IMAGES"]) >= 6 and probe["BROKEN"] == ""
    asc = [float(v) for v in probe["ASC"].split(",") if v]
    desc = [float(v) for v in probe["DESC"].split(",") if v]
    assert asc == sorted(asc) and desc == sorted(desc, reverse=True) and len(asc) == 4


def test_error_probe_detects_script_errors(rendered, tmp_path):
    """The window.onerror box really catches errors (so the test above can fail)."""
    broken = rendered.parent / "broken.html"
    broken.write_text(rendered.read_text().replace("</body>", "<script>undefinedFunction();</script></body>"))
    result = chromium(["--virtual-time-budget=5000", "--dump-dom", broken.as_uri()], tmp_path / "ud")
    assert "undefinedFunction" in js_errors(result.stdout)
    assert any("undefinedFunction" in line for line in console_errors(result.stderr))


def test_screenshot(rendered, tmp_path):
    shot = tmp_path / "report.png"
    result = chromium(["--window-size=1400,2400", "--hide-scrollbars", f"--screenshot={shot}", rendered.as_uri()],
                      tmp_path / "ud")
    assert shot.is_file() and shot.stat().st_size > 50_000, result.stderr[-2000:]
    assert not console_errors(result.stderr)
    shutil.copy(shot, rendered.parent / "screenshot.png")
