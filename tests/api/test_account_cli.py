"""``callvault admin bootstrap --login``: the operator's portal password, from stdin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from callvault.cli import main
from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.models import Operator
from callvault.portal.passwords import verify_password


def _operators(tmp_path: Path) -> list[Operator]:
    engine = make_engine(f"sqlite:///{tmp_path / 'callvault.db'}")
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(Operator)))
    finally:
        engine.dispose()


def test_bootstrap_sets_the_operator_login_idempotently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CALLVAULT_DATA_DIR", raising=False)
    args = ["admin", "bootstrap", "--data-dir", str(tmp_path), "--login", "Ops"]
    monkeypatch.setattr("sys.stdin", io.StringIO("first long password\n"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "API token" in out and "portal login 'ops' set" in out
    assert "first long password" not in out
    monkeypatch.setattr("sys.stdin", io.StringIO("second long password\n"))
    assert main(args) == 0
    assert "already exists" in capsys.readouterr().out
    (operator,) = _operators(tmp_path)
    assert operator.login == "ops"
    assert verify_password(operator.password_hash, "second long password").ok
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(args) == 2
    assert "at least 10" in capsys.readouterr().err
