"""`reader-study serve`: the answer store (sqlite) and the 127.0.0.1 server, without a browser.

An answer is in the database file, for any other connection, when the server replies; readers
never see each other's rows; the export scores exactly like the page's own CSV of the same answers.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from reports.reader_study.make import StudyCase, write_study
from reports.reader_study.score import score_files
from reports.reader_study.server import TOKEN_FILE, export_study, open_server, study_token
from reports.reader_study.store import AnswerStore
from tumorbench_common.errors import InputError


def make_study(path: Path, n: int = 6) -> dict:
    rng = np.random.default_rng(0)
    cases = [StudyCase(rng.normal(40, 30, (20, 16, 6)).astype(np.float32), (2.0, 2.0, 2.0),
                       "real" if i % 2 else "synthetic", 2, {"source": "real" if i % 2 else "hu"}) for i in range(n)]
    return write_study(cases, path, task="real-vs-synthetic", seed=3)


def rows(db: Path) -> list[tuple]:
    """The answers table as a fresh connection (another process, after a restart) sees it."""
    with sqlite3.connect(db) as con:
        return con.execute("SELECT study_id, reader, case_id, answer, confidence FROM answers "
                           "ORDER BY reader, case_id").fetchall()


def test_answer_is_in_the_file_when_put_returns_and_readers_stay_apart(tmp_path):
    db = tmp_path / "answers.sqlite"
    store = AnswerStore(db, "s1")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.put_answer("alice", "case_001", "real", "4", "t1")
    # visible to another connection while the store is still open (committed, not pending)
    assert rows(db) == [("s1", "alice", "case_001", "real", "4")]
    store.put_answer("alice", "case_001", "synthetic", "2", "t2")  # a changed answer replaces the row
    store.put_answer("bob", "case_002", "real", "", "t3")
    store.put_position("alice", 3)
    store.close()
    with AnswerStore(db, "s1") as reopened:
        alice, bob = reopened.reader_state("alice"), reopened.reader_state("bob")
        assert alice == {"reader": "alice", "position": 3, "answers": {
            "case_001": {"answer": "synthetic", "confidence": "2", "answered_at": "t2"}}}
        assert bob["answers"] == {"case_002": {"answer": "real", "confidence": "", "answered_at": "t3"}}
        assert bob["position"] == 0 and reopened.readers() == ["alice", "bob"]
    with AnswerStore(db, "s2") as other_study:  # same file, another study: nothing of s1
        assert other_study.readers() == [] and other_study.reader_state("alice")["answers"] == {}
    with pytest.raises(InputError, match="reader name"):
        AnswerStore(db, "s1").put_answer("../x", "case_001", "real", "", "")


def page_csv(study: dict, state: dict) -> str:
    """The CSV the page's exportCsv() writes from its localStorage state (template.html)."""
    def cell(v):
        v = "" if v is None else str(v)
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in '",\n') else v
    lines = [["study_id", "reader", "case_id", "answer", "confidence", "answered_at"]]
    for case_id in study["cases"]:
        given = state["answers"].get(case_id, {})
        lines.append([study["study_id"], state["reader"], case_id, given.get("answer"), given.get("confidence"),
                      given.get("answered_at")])
    return "\n".join(",".join(map(cell, line)) for line in lines) + "\n"


def test_export_scores_like_the_pages_own_sheets(tmp_path):
    study = make_study(tmp_path / "study")
    states = {"alice": {"case_001": ("synthetic", 4), "case_002": ("real", 2), "case_004": ("real", 5),
                        "case_005": ("synthetic", 1)},
              "bob": {"case_001": ("real", 3), "case_003": ("synthetic", 3), "case_006": ("real", 2)}}
    sheets = []
    with AnswerStore(tmp_path / "study" / "answers.sqlite", study["study_id"]) as store:
        for reader, answers in states.items():
            state = {"reader": reader, "index": 0, "answers": {
                case: {"answer": a, "confidence": c, "answered_at": "2026-01-01T00:00:00Z"} for case, (a, c) in answers.items()}}
            sheets.append(tmp_path / f"page_{reader}.csv")
            sheets[-1].write_text(page_csv(study, state))
            for case, (a, c) in answers.items():
                store.put_answer(reader, case, a, str(c), "2026-01-01T00:00:00Z")
    exported = export_study(tmp_path / "study")
    assert [p.name for p in exported] == ["answers_alice.csv", "answers_bob.csv"]
    assert [p.read_text() for p in exported] == [p.read_text() for p in sheets]  # byte for byte
    from_db = score_files(tmp_path / "study", exported, tmp_path / "db_scores")
    from_page = score_files(tmp_path / "study", sheets, tmp_path / "page_scores")
    pd.testing.assert_frame_equal(from_db, from_page)
    assert from_db.query("reader == 'alice' and group == 'all' and metric == 'accuracy'")["n"].item() == 4


def request(url: str, body: dict | None = None, host: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", **({"Host": host} if host else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            data = reply.read()
            return reply.status, json.loads(data) if reply.headers.get_content_type() == "application/json" else {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def served(tmp_path):
    study = make_study(tmp_path / "study")
    server = open_server(tmp_path / "study", port=0, db=tmp_path / "answers.sqlite")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, study, tmp_path / "answers.sqlite"
    server.shutdown()
    server.server_close()
    server.store.close()


def test_server_commits_before_it_replies_and_keeps_readers_apart(served):
    server, study, db = served
    assert server.server_address[0] == "127.0.0.1"
    status, _ = request(server.url + "api/answer", {"reader": "alice", "case_id": "case_002", "answer": "real",
                                                    "confidence": 5, "answered_at": "t"})
    assert status == 200
    assert rows(db) == [(study["study_id"], "alice", "case_002", "real", "5")]  # no wait: in the file already
    assert request(server.url + "api/position", {"reader": "alice", "index": 2})[0] == 200
    assert request(server.url + "api/state?reader=alice")[1]["position"] == 2
    assert request(server.url + "api/state?reader=bob")[1] == {"reader": "bob", "position": 0, "answers": {}}
    request(server.url + "api/answer", {"reader": "bob", "case_id": "case_002", "answer": "synthetic"})
    assert request(server.url + "api/state?reader=alice")[1]["answers"]["case_002"]["answer"] == "real"
    with urllib.request.urlopen(server.url + "cases/case_001.js", timeout=10) as reply:
        assert reply.read().startswith(b'TB_REGISTER("case_001"')


@pytest.mark.parametrize("body, error", [
    ({"reader": "alice", "case_id": "case_999", "answer": "real"}, "case_999"),
    ({"reader": "alice", "case_id": "case_001", "answer": "maybe"}, "maybe"),
    ({"reader": "alice", "case_id": "case_001", "answer": "real", "confidence": 7}, "confidence"),
    ({"reader": "", "case_id": "case_001", "answer": "real"}, "reader name"),
])
def test_server_refuses_bad_answers_and_writes_nothing(served, body, error, capsys):
    server, _, db = served
    status, reply = request(server.url + "api/answer", body)
    assert status == 400 and error in reply["error"] and rows(db) == []
    log = capsys.readouterr().err  # errors are logged, the token never
    assert "POST /<token>/api/answer -> 400" in log and server.token not in log


def test_token_host_and_files_outside_the_page_are_refused(served, tmp_path):
    server, _, db = served
    root = server.url.rsplit("/", 2)[0]
    body = {"reader": "eve", "case_id": "case_001", "answer": "real"}
    assert request(root + "/api/answer", body)[0] == 403
    assert request(root + "/" + "x" * len(server.token) + "/api/answer", body)[0] == 403
    assert request(root + "/" + "x" * len(server.token) + "/index.html")[0] == 403
    assert request(server.url + "api/answer", body, host="evil.example:80")[0] == 403
    assert rows(db) == []
    assert request(server.url + "../key.csv")[0] == 404  # sent as a literal ..; resolved outside reader/
    assert (tmp_path / "study" / TOKEN_FILE).stat().st_mode & 0o077 == 0
    assert study_token(tmp_path / "study") == server.token  # stored with the study: the same after a restart


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    make_study(tmp_path / "study")
    (tmp_path / "notes.txt").write_text("not sqlite\n" * 200)
    with pytest.raises(InputError, match="notes.txt: not a usable answers database"):
        open_server(tmp_path / "study", port=0, db=tmp_path / "notes.txt")


def test_cli_errors_are_one_clear_line(served, tmp_path, capsys):
    server, _, _ = served
    assert main(["reader-study", "serve", str(tmp_path / "missing")]) == 2
    assert "missing/study.json: study description not found" in capsys.readouterr().err
    port = server.server_address[1]
    assert main(["reader-study", "serve", str(tmp_path / "study"), "--port", str(port),
                 "--db", str(tmp_path / "other.sqlite")]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
    assert main(["reader-study", "export", str(tmp_path / "study"), "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "none.sqlite: answers database not found" in capsys.readouterr().err


def test_make_refuses_to_replace_a_study_with_served_answers(tmp_path, capsys):
    study = tmp_path / "study"
    make_study(study)
    AnswerStore(study / "answers.sqlite", "x").close()
    assert main(["reader-study", "make", str(tmp_path / "no_dataset"), "--out", str(study)]) == 2
    assert "answers.sqlite: answers given on `reader-study serve`" in capsys.readouterr().err
    assert (study / "answers.sqlite").is_file() and (study / "key.csv").is_file()
