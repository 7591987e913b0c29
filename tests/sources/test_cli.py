"""``callvault admin source add|list|remove`` on a data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from callvault.admin import create_tenant
from callvault.cli import main
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import AuditEvent
from callvault.sources.registry import SourceLimits, SourceRegistry

FP = "9f" * 32
FP_COLONS = ":".join([FP[i : i + 2] for i in range(0, 64, 2)]).upper()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CALLVAULT_DATA_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'callvault.db'}"
    migrate(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        create_tenant(session, "Acme", ["acme.example"], [])
        create_tenant(session, "Beta", ["beta.example"], [])
        session.commit()
    engine.dispose()
    return tmp_path


def _registry(data_dir: Path) -> tuple[SourceRegistry, list[AuditEvent]]:
    engine = make_engine(f"sqlite:///{data_dir / 'callvault.db'}")
    try:
        with make_sessionmaker(engine)() as session:
            events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
            return SourceRegistry.load(session), events
    finally:
        engine.dispose()


def test_add_list_and_remove(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--data-dir", str(data_dir)]
    add = ["admin", "source", "add", "sbc-1", "--network", "192.0.2.0/24", "--network", "::1"]
    add += ["--fingerprint", FP_COLONS, "--tenant", "Acme", "--tenant", "2"]
    add += ["--require-tls", "--max-calls", "5", "--max-media-lines", "2", *where]
    assert main(add) == 0
    assert "source 1 'sbc-1' registered" in capsys.readouterr().out
    registry, events = _registry(data_dir)
    (source,) = registry.sources
    assert registry.identify("192.0.2.4", FP) == source
    assert registry.identify("192.0.2.4", None) is None  # its certificate is required
    assert source.tenant_ids == {1, 2} and source.require_tls and not source.require_srtp
    assert source.limits == SourceLimits(max_calls=5, max_media_lines=2)
    assert [(e.action, e.actor, e.tenant_id) for e in events] == [("source.create", "cli", None)]

    assert main(["admin", "source", "list", "--json", *where]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert listed["networks"] == ["192.0.2.0/24", "::1/128"] and listed["fingerprints"] == [FP]
    assert main(["admin", "source", "list", *where]) == 0
    text = capsys.readouterr().out
    assert "sbc-1" in text and "192.0.2.0/24" in text and "requires tls" in text

    assert main(["admin", "source", "remove", "sbc-1", *where]) == 0
    assert "removed" in capsys.readouterr().out
    registry, events = _registry(data_dir)
    assert len(registry) == 0 and events[-1].action == "source.delete"
    assert main(["admin", "source", "remove", "1", *where]) == 1
    assert "no such recording source" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["x"], "at least one network or certificate fingerprint"),
        (["x", "--network", "10.0.0.1/8"], "host bits set"),
        (["x", "--fingerprint", "beef"], "SHA-256"),
        (["x", "--network", "10.0.0.0/8", "--tenant", "Nobody"], "no such tenant: Nobody"),
        (["x", "--network", "10.0.0.0/8", "--max-session-expires", "10"], "between 90 and"),
    ],
)
def test_add_refuses_what_the_api_refuses(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert main(["admin", "source", "add", *args, "--data-dir", str(data_dir)]) == 2
    assert needle in capsys.readouterr().err
    registry, events = _registry(data_dir)
    assert len(registry) == 0 and events == []


def test_a_name_is_registered_once(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add = ["admin", "source", "add", "pbx", "--network", "10.0.0.0/8", "--data-dir", str(data_dir)]
    assert main(add) == 0
    assert main(add) == 2
    assert "exists" in capsys.readouterr().err
