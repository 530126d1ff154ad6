"""Kill test of `reader-study serve` in headless Chromium: no acknowledged answer is ever lost.

A reader answers three of six cases on the served page and moves on to the fourth; the moment the
page has the server's reply to every write (its outbox is empty: an event, not a timer), the
browser and the server are killed with SIGKILL. Both restart (a fresh browser profile, so nothing
can come from localStorage): the database holds every answer, and the page shows them and opens
at the fourth case. A second reader on the same server starts empty and leaves the first's rows alone.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reports.reader_study.server import export_study
from test_reader_study_browser import CHROMIUM, DevTools
from test_reader_study_serve import make_study

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="needs headless Chromium at /usr/bin/chromium (apt-get install -y chromium)")]

SAVED = "typeof savedAll === 'function' && savedAll()"


def start_server(study: Path, db: Path, port: int = 0) -> tuple[subprocess.Popen, str]:
    """`tumorbench reader-study serve` (default: on a free port) as a process of its own; (process, URL)."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "reader-study", "serve", str(study), "--port", str(port),
                             "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the URL line comes once the socket listens
        if line.startswith("readers open: "):
            return proc, line.split()[2].split("?")[0]
    raise RuntimeError(f"server did not start: {proc.wait(timeout=10)} {proc.stderr.read()}")


def start(study: Path, db: Path, profile: Path, port: int = 0) -> tuple[subprocess.Popen, str, DevTools]:
    """A fresh server and a fresh browser (its own profile: empty localStorage)."""
    server, url = start_server(study, db, port)
    browser = DevTools(profile)
    try:
        browser.attach_page()
    except BaseException:
        kill(server, browser)
        raise
    return server, url, browser


def kill(server: subprocess.Popen, browser: DevTools) -> None:
    """SIGKILL both (no clean shutdown, no flush): what a crash or a pulled plug does."""
    if server.poll() is None:
        os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    browser.close()  # SIGKILL too


def open_page(browser: DevTools, url: str, reader: str | None) -> None:
    browser.send("Page.navigate", {"url": url + (f"?reader={reader}" if reader else "")})
    loaded = f"document.body.dataset.reader === '{reader}' && CASES[currentId()] !== undefined" if reader \
        else "CASES[currentId()] !== undefined"
    browser.wait_for(f"location.href.startsWith('{url}') && typeof CASES === 'object' && {loaded}")


def db_answers(db: Path) -> dict:
    with sqlite3.connect(db) as con:
        return {(r, c): (a, k) for r, c, a, k in con.execute("SELECT reader, case_id, answer, confidence FROM answers")}


def db_positions(db: Path) -> dict:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT reader, case_index FROM positions").fetchall())


def click(browser: DevTools, *ids: str) -> None:
    browser.js(";".join(f"document.getElementById('{i}').click()" for i in ids))


def text(browser: DevTools, element: str) -> str:
    return browser.js(f"document.getElementById('{element}').textContent")


def test_answers_survive_killing_browser_and_server_mid_study(tmp_path):
    study, db = tmp_path / "study", tmp_path / "answers.sqlite"
    make_study(study, n=6)
    server, url, browser = start(study, db, tmp_path / "profile1")
    try:
        open_page(browser, url, None)
        click(browser, "answer-real")  # no name yet: refused on the page, nothing sent
        assert "enter your name" in text(browser, "status")
        browser.js("const r = document.getElementById('reader'); r.value = 'alice'; r.dispatchEvent(new Event('change'))")
        browser.wait_for("document.body.dataset.reader === 'alice'")
        assert "saved on the study server" in text(browser, "storageNote")
        click(browser, "answer-synthetic", "confidence-4", "next")
        browser.wait_for("CASES['case_002'] !== undefined")
        browser.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'r'}))")
        click(browser, "next", "answer-synthetic", "confidence-2", "answer-real", "next")
        browser.wait_for(SAVED)  # the server has replied to every write; kill right away
    finally:
        kill(server, browser)
    expected = {("alice", "case_001"): ("synthetic", "4"), ("alice", "case_002"): ("real", ""),
                ("alice", "case_003"): ("real", "2")}
    assert db_answers(db) == expected and db_positions(db) == {"alice": 3}

    server, url, browser = start(study, db, tmp_path / "profile2")  # a new browser: empty localStorage
    try:
        open_page(browser, url, "alice")
        assert text(browser, "progress") == "answered 3 / 6"
        assert text(browser, "caseLabel").startswith("case_004")  # resumed where she stopped
        click(browser, "prev")
        assert browser.js("document.getElementById('answer-real').classList.contains('chosen') && "
                          "document.getElementById('confidence-2').classList.contains('chosen')")
        open_page(browser, url, "bob")  # another reader: starts empty, at the first case
        assert text(browser, "progress") == "answered 0 / 6" and text(browser, "caseLabel").startswith("case_001")
        click(browser, "answer-real")
        browser.wait_for(SAVED)
    finally:
        kill(server, browser)
    assert db_answers(db) == {**expected, ("bob", "case_001"): ("real", "")}
    sheets = export_study(study, db=db, out_dir=tmp_path / "sheets")
    alice = sheets[0].read_text().splitlines()
    assert alice[1].split(",")[1:5] == ["alice", "case_001", "synthetic", "4"] and len(alice) == 7


def test_answers_given_while_the_server_is_down_arrive_when_it_is_back(tmp_path):
    """The page keeps an answer it could not send, says so, and sends it once the server is back."""
    study, db = tmp_path / "study", tmp_path / "answers.sqlite"
    make_study(study, n=4)
    server, url, browser = start(study, db, tmp_path / "profile")
    try:
        open_page(browser, url, "carol")
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        click(browser, "answer-synthetic")  # one write only: no later write may carry it
        browser.wait_for("document.getElementById('saveState').textContent.startsWith('NOT saved yet')")
        assert not browser.js("savedAll()") and db_answers(db) == {}
        server, _ = start_server(study, db, port=int(url.split(":")[2].split("/")[0]))
        browser.wait_for("savedAll()", tries=400)  # the page retries every 2 s
        assert db_answers(db) == {("carol", "case_001"): ("synthetic", "")}
    finally:
        kill(server, browser)
