"""The answers of a served reader study in one sqlite file: every answer committed when given.

Rows are keyed by study id + reader name + case id, so one file can hold several studies and
readers never share a row. The file runs in WAL mode with ``synchronous=FULL``: a write is on
disk (fsync'd) when :meth:`AnswerStore.put_answer` returns, which the server does before it
answers the page, so an acknowledged answer survives a killed server, browser or machine.

:func:`export_sheets` writes one CSV per reader in the page's own export format
(``study_id,reader,case_id,answer,confidence,answered_at``), which `reader-study score` reads.
"""
from __future__ import annotations

import csv
import io
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Sequence

from tumorbench_common.errors import InputError
from tumorbench_common.io import write_text_atomic

SHEET_COLUMNS = ("study_id", "reader", "case_id", "answer", "confidence", "answered_at")
READER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    study_id TEXT NOT NULL, reader TEXT NOT NULL, case_id TEXT NOT NULL,
    answer TEXT NOT NULL, confidence TEXT NOT NULL, answered_at TEXT NOT NULL,
    PRIMARY KEY (study_id, reader, case_id));
CREATE TABLE IF NOT EXISTS positions (
    study_id TEXT NOT NULL, reader TEXT NOT NULL, case_index INTEGER NOT NULL,
    PRIMARY KEY (study_id, reader));
"""


def check_reader(name: Any) -> str:
    """The reader name, or InputError: it names the answer files, so letters, digits, ``. _ -``."""
    if not isinstance(name, str) or not READER_NAME.fullmatch(name):
        raise InputError(f"reader name {name!r}: expected 1-64 letters, digits, '.', '_' or '-' "
                         "(starting with a letter or digit)")
    return name


class AnswerStore:
    """One study's answers in the sqlite file ``path`` (created if missing), safe across threads."""

    def __init__(self, path: str | Path, study_id: str):
        self.path, self.study_id = Path(path), study_id
        try:
            # autocommit mode (isolation_level=None): every write below is its own explicit
            # transaction, committed before the method returns
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            if self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise InputError(f"{self.path}: sqlite cannot use WAL mode here (a network filesystem?)")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable answers database ({exc})") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "AnswerStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def put_answer(self, reader: str, case_id: str, answer: str, confidence: str, answered_at: str) -> None:
        """Store (replace) ``reader``'s answer to ``case_id``; committed and synced on return."""
        self._write("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (study_id, reader, case_id) "
                    "DO UPDATE SET answer = excluded.answer, confidence = excluded.confidence, "
                    "answered_at = excluded.answered_at",
                    (self.study_id, check_reader(reader), case_id, answer, confidence, answered_at))

    def put_position(self, reader: str, case_index: int) -> None:
        """Remember the case ``reader`` looks at (0-based), to resume there."""
        self._write("INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (study_id, reader) "
                    "DO UPDATE SET case_index = excluded.case_index",
                    (self.study_id, check_reader(reader), int(case_index)))

    def reader_state(self, reader: str) -> dict[str, Any]:
        """``{"reader", "position", "answers": {case_id: {answer, confidence, answered_at}}}``."""
        check_reader(reader)
        with self._lock:
            rows = self._db.execute("SELECT case_id, answer, confidence, answered_at FROM answers "
                                    "WHERE study_id = ? AND reader = ?", (self.study_id, reader)).fetchall()
            position = self._db.execute("SELECT case_index FROM positions WHERE study_id = ? AND reader = ?",
                                        (self.study_id, reader)).fetchone()
        answers = {case: {"answer": a, "confidence": c, "answered_at": t} for case, a, c, t in rows}
        return {"reader": reader, "position": position[0] if position else 0, "answers": answers}

    def readers(self) -> list[str]:
        """Readers with at least one stored answer or position, sorted."""
        with self._lock:
            rows = self._db.execute("SELECT reader FROM answers WHERE study_id = ? UNION "
                                    "SELECT reader FROM positions WHERE study_id = ? ORDER BY reader",
                                    (self.study_id, self.study_id)).fetchall()
        return [r for (r,) in rows]


def sheet_rows(study_id: str, reader: str, cases: Sequence[str], answers: dict[str, dict]) -> list[list[str]]:
    """The rows of one reader's answer sheet, one per case in study order (empty when unanswered)."""
    rows = []
    for case_id in cases:
        given = answers.get(case_id, {})
        rows.append([study_id, reader, case_id, given.get("answer", ""), str(given.get("confidence", "")),
                     given.get("answered_at", "")])
    return rows


def export_sheets(db_path: str | Path, study: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/answers_<reader>.csv`` for every reader of ``study`` in ``db_path``; return them.

    Each file is written atomically; an existing sheet of the same reader is replaced.
    """
    db_path, out_dir = Path(db_path), Path(out_dir)
    if not db_path.is_file():
        raise InputError(f"{db_path}: answers database not found (run `tumorbench reader-study serve` first)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with AnswerStore(db_path, study["study_id"]) as store:
        for reader in store.readers():
            path = out_dir / f"answers_{reader}.csv"
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(SHEET_COLUMNS)
            writer.writerows(sheet_rows(study["study_id"], reader, study["cases"],
                                        store.reader_state(reader)["answers"]))
            write_text_atomic(path, text.getvalue())
            written.append(path)
    return written
