"""`callvault serve` on an empty database: the operator, one start-up line, quiet logs.

The first start creates the operator and prints its login, password and API
token on one line; both work against the running server over HTTP. A second
start says nothing about it. Start-up prints one line with the SIP, RTP and
HTTP addresses and no migration chatter; ``CALLVAULT_LOG_FORMAT=json`` makes
every log line a JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from callvault.app import first_run_operator
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Operator
from callvault.portal.passwords import verify_password

STARTED = re.compile(
    r"callvault serving: SIP udp 127\.0\.0\.1:(\d+).*HTTP http://127\.0\.0\.1:(\d+)"
)
FIRST = re.compile(r"portal login (\S+), password (\S+), API token (cv_\S+) ")


class Server:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern.pattern!r} in {self.lines}") from None
            if line is None:
                raise AssertionError(f"server exited: {self.lines}")
            self.lines.append(line)
            if found := pattern.search(line):
                return found


@contextmanager
def serve(data_dir: Path, **env: str) -> Iterator[Server]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    environ.update(
        CALLVAULT_SIP_PORT="0",
        CALLVAULT_HTTP_PORT="0",
        CALLVAULT_RTP_PORT_MIN="41000",
        CALLVAULT_RTP_PORT_MAX="41100",
        **env,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "callvault", "serve", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL,  # not a terminal: the first start makes the login up
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
    )
    server = Server(process)
    try:
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_first_start_prints_an_operator_login_that_works(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        first = server.until(FIRST)
        started = server.until(STARTED)
        login, password, token = first.groups()
        base = f"http://127.0.0.1:{started.group(2)}"
        with httpx.Client(base_url=base) as http:
            session = http.post("/api/v1/session", json={"login": login, "password": password})
            assert session.status_code == 200, session.text
            assert session.json()["role"] == "operator"
            tenants = http.get("/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})
            assert tenants.status_code == 200, tenants.text
    output = "\n".join(server.lines)
    assert sum("first start" in line for line in server.lines) == 1
    assert "alembic" not in output and "Running upgrade" not in output
    assert sum("callvault serving" in line for line in server.lines) == 1
    # one line in all before serving: the operator's; the start-up line says the rest
    assert len(server.lines) == 2, output

    # a later start: nothing about the operator, the same one start-up line
    with serve(tmp_path) as again:
        again.until(STARTED)
    assert not any("first start" in line or "cv_" in line for line in again.lines)
    assert len(again.lines) == 1, again.lines


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    with serve(tmp_path, CALLVAULT_LOG_FORMAT="json") as server:
        server.until(FIRST)
        server.until(STARTED)
    logged = [line for line in server.lines if not line.startswith("first start")]
    assert logged
    for line in logged:
        entry = json.loads(line)
        assert set(entry) == {"time", "level", "logger", "message"}, entry
    assert any(e["message"].startswith("callvault serving") for e in map(json.loads, logged))


def test_first_run_with_a_terminal_uses_the_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'callvault.db'}"
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        line = first_run_operator(sessions, ask=lambda: ("Boss", "a long password 1"))
        assert line is not None
        assert "portal login boss" in line and "a long password 1" not in line
        assert re.search(r"API token cv_\S+", line)
        with sessions() as session:
            operator = session.query(Operator).one()
            assert operator.login == "boss"
            assert verify_password(operator.password_hash, "a long password 1").ok
        # the second start: an operator exists, nothing is asked or printed
        assert first_run_operator(sessions, ask=lambda: pytest.fail("asked again")) is None
    finally:
        engine.dispose()


def test_migrations_say_nothing_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("alembic"), "level", logging.NOTSET)
    caplog.set_level(logging.INFO)
    migrate(f"sqlite:///{tmp_path / 'callvault.db'}")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


def test_the_terminal_is_asked_again_for_a_short_or_mistyped_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from callvault import cli

    answers = iter(
        [
            "short",
            "a long password 1",
            "a typo password 1",
            "a long password 2",
            "a long password 2",
        ]
    )
    monkeypatch.setattr("builtins.input", lambda _prompt: "  ")  # Enter: the default login
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))
    assert cli._ask_operator() == ("operator", "a long password 2")
    out = capsys.readouterr().out
    assert "at least" in out and "the passwords differ" in out
