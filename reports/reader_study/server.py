"""Serve a reader study's page on 127.0.0.1 and store every answer the moment it is given.

URL: ``http://127.0.0.1:PORT/<token>/?reader=NAME``. The token is a per-study secret
(``secrets.token_urlsafe``) kept in ``DIR/server_token`` (mode 0600, outside ``DIR/reader/``, so
never served and never logged to MLflow with ``study.json``); every request without it, or with a
Host header other than the loopback names, gets 403. The server binds 127.0.0.1 only: a remote
reader reaches it through SSH port forwarding, never through 0.0.0.0.

API (JSON, under the token prefix): ``GET api/state?reader=R`` (R's answers and the case to resume
at), ``POST api/answer`` {reader, case_id, answer, confidence, answered_at} and ``POST
api/position`` {reader, index}. A POST is answered only after the write is committed and synced
(:class:`reports.reader_study.store.AnswerStore`), so what the page reports as saved survives a
killed server or browser.
"""
from __future__ import annotations

import errno
import json
import mimetypes
import os
import secrets
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from reports.reader_study.store import AnswerStore, check_reader
from tumorbench_common.errors import InputError

HOST = "127.0.0.1"
TOKEN_FILE = "server_token"
DEFAULT_DB = "answers.sqlite"
SERVED_PAGE_MARKER = "TB_SERVED_API"  # in pages whose script can talk to this server
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "[::1]"}
MAX_BODY = 64 * 1024


def load_study(study_dir: str | Path) -> dict[str, Any]:
    """study.json of a folder written by `reader-study make`, checked against its reader page."""
    study_dir = Path(study_dir)
    study_path, page_path = study_dir / "study.json", study_dir / "reader" / "index.html"
    for path, what in ((study_path, "study description"), (page_path, "reader page")):
        if not path.is_file():
            raise InputError(f"{path}: {what} not found (is {study_dir} a folder written by `reader-study make`?)")
    try:
        study = json.loads(study_path.read_text())
        fields = study["study_id"], study["cases"], study["choices"]
    except (ValueError, KeyError) as exc:
        raise InputError(f"{study_path}: not a reader-study description ({exc!r})") from exc
    page = page_path.read_text()
    if SERVED_PAGE_MARKER not in page:
        raise InputError(f"{page_path}: made before `reader-study serve` existed; make the study again")
    if json.dumps(fields[0]) not in page:
        raise InputError(f"{page_path}: the page is not the page of study {fields[0]} ({study_path})")
    return study


def study_token(study_dir: str | Path) -> str:
    """The study's secret URL token: read from ``DIR/server_token``, or drawn and stored (0600)."""
    path = Path(study_dir) / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if len(token) < 16:
            raise InputError(f"{path}: token too short or empty; delete the file to draw a new one") from None
        return token
    token = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token


class StudyServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its study, token, page folder and answer store."""

    daemon_threads = True

    def __init__(self, port: int, study: dict[str, Any], reader_dir: Path, token: str, store: AnswerStore):
        self.study, self.reader_dir, self.token, self.store = study, reader_dir.resolve(), token, store
        super().__init__((HOST, port), StudyHandler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/{self.token}/"


class StudyHandler(BaseHTTPRequestHandler):
    server: StudyServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        rest, query = self._route()
        if rest is None:
            return
        if rest == "api/state":
            reader = (query.get("reader") or [""])[0]
            self._call(lambda: self.server.store.reader_state(check_reader(reader)))
        elif rest.startswith("api/"):
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such API {rest!r}"})
        else:
            self._static(rest or "index.html")

    def do_POST(self) -> None:  # noqa: N802
        rest, _ = self._route()
        if rest is None:
            return
        actions = {"api/answer": self._answer, "api/position": self._position}
        if rest not in actions:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such API {rest!r}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"body of {length} bytes (expected 1-{MAX_BODY})"})
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
            return
        self._call(lambda: actions[rest](body))

    def _route(self) -> tuple[str | None, dict]:
        """(path after the token, query) of a request with the right token and Host, else answer 403."""
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or ""
        host = host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]
        if host not in LOOPBACK_NAMES:  # another site's page reaching us through a DNS name
            self._send(HTTPStatus.FORBIDDEN, {"error": f"Host {host!r} refused: open the study on 127.0.0.1"})
            return None, {}
        token, sep, rest = parts.path.lstrip("/").partition("/")
        if not secrets.compare_digest(token.encode(), self.server.token.encode()):
            self._send(HTTPStatus.FORBIDDEN, {"error": "missing or wrong study token: open the URL printed by "
                                                       "`tumorbench reader-study serve`"})
            return None, {}
        if not sep:  # /<token> -> /<token>/ so that the page's relative links keep the token
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", f"/{token}/" + (f"?{parts.query}" if parts.query else ""))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None, {}
        return rest, parse_qs(parts.query)

    def _answer(self, body: dict) -> dict:
        study = self.server.study
        case_id, answer = body.get("case_id"), str(body.get("answer") or "")
        confidence, answered_at = str(body.get("confidence") or ""), str(body.get("answered_at") or "")
        if case_id not in study["cases"]:
            raise InputError(f"case_id {case_id!r} is not a case of study {study['study_id']}")
        if answer not in [*study["choices"], ""]:
            raise InputError(f"answer {answer!r}: expected one of {study['choices']} or empty")
        if confidence not in ("", "1", "2", "3", "4", "5") or len(answered_at) > 40:
            raise InputError(f"confidence {confidence!r} / answered_at {answered_at!r}: expected 1-5 / a time")
        self.server.store.put_answer(body.get("reader"), case_id, answer, confidence, answered_at)
        return {"saved": case_id}

    def _position(self, body: dict) -> dict:
        index = body.get("index")
        if not isinstance(index, int) or not 0 <= index < len(self.server.study["cases"]):
            raise InputError(f"index {index!r}: expected a case number 0-{len(self.server.study['cases']) - 1}")
        self.server.store.put_position(body.get("reader"), index)
        return {"saved": index}

    def _call(self, action: Callable[[], dict]) -> None:
        try:
            result = action()
        except InputError as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._send(HTTPStatus.OK, result)

    def _static(self, rest: str) -> None:
        path = (self.server.reader_dir / rest).resolve()
        if not path.is_relative_to(self.server.reader_dir) or not path.is_file():
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no file {rest!r} in the reader page"})
            return
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, path.read_bytes(), kind)

    def _send(self, status: HTTPStatus, body: Any, kind: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind + ("; charset=utf-8" if kind.startswith(("text/", "application/j")) else ""))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if isinstance(code, int) and code >= 400:  # errors only, never the token
            self.log_message("%s %s -> %s", self.command, self.path.replace(self.server.token, "<token>"), code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        sys.stderr.write(f"reader-study serve: {format % args}\n".replace(self.server.token, "<token>"))


def open_server(study_dir: str | Path, port: int = 8765, db: str | Path | None = None) -> StudyServer:
    """Bind the study's server on 127.0.0.1:``port`` (0: any free port); answers go to ``db``
    (default ``DIR/answers.sqlite``). Raises InputError for a bad folder or a busy port."""
    study_dir = Path(study_dir)
    study = load_study(study_dir)
    token = study_token(study_dir)
    store = AnswerStore(db or study_dir / DEFAULT_DB, study["study_id"])
    try:
        return StudyServer(port, study, study_dir / "reader", token, store)
    except OSError as exc:
        store.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {HOST} is in use (another server?): pick --port N, "
                             "or --port 0 for any free port") from exc
        raise InputError(f"cannot listen on {HOST}:{port}: {exc}") from exc


def serve(study_dir: str | Path, port: int = 8765, db: str | Path | None = None,
          announce: Callable[[str], None] = print) -> None:
    """Run the study's server until interrupted; ``announce`` gets the reader URL once."""
    server = open_server(study_dir, port, db)
    announce(f"reader study {server.study['study_id']}: {server.study['n_cases']} cases, answers in "
             f"{server.store.path}\nreaders open: {server.url}?reader=THEIR_NAME\n(keep the URL secret; "
             "Ctrl-C stops the server, every given answer is already saved)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.store.close()


def export_study(study_dir: str | Path, db: str | Path | None = None, out_dir: str | Path | None = None) -> list[Path]:
    """Write every reader's answers of the study (``db``, default ``DIR/answers.sqlite``) as
    ``answers_<reader>.csv`` sheets into ``out_dir`` (default ``DIR/answers``) for `score`."""
    from reports.reader_study.store import export_sheets

    study_dir = Path(study_dir)
    study = load_study(study_dir)
    return export_sheets(db or study_dir / DEFAULT_DB, study, out_dir or study_dir / "answers")
