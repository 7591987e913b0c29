"""Settings refuse bad keys by name; bootstrap is idempotent; the demo records calls."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from callvault.cli import main
from callvault.settings import SettingsError, load_settings


def test_defaults_are_single_machine_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CALLVAULT_"):
            monkeypatch.delenv(name)
    settings = load_settings()
    assert settings.sip_host == "127.0.0.1"
    assert settings.db_url.startswith("sqlite:///")
    assert settings.media_address == "127.0.0.1"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLVAULT_SIP_PORT", "5080")
    monkeypatch.setenv("CALLVAULT_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.sip_port == 5080
    assert settings.spool_dir == tmp_path / "spool"


@pytest.mark.parametrize(
    "name,value,needle",
    [
        ("CALLVAULT_SIP_PORT", "70000", "sip_port"),
        ("CALLVAULT_SIP_PORT", "five", "sip_port"),
        ("CALLVAULT_SIP_HOST", "not-an-ip", "sip_host"),
        ("CALLVAULT_LOG_LEVEL", "LOUD", "log_level"),
        ("CALLVAULT_LOG_FORMAT", "xml", "log_format"),
        ("CALLVAULT_SIP_PROT", "5060", "CALLVAULT_SIP_PROT"),
    ],
)
def test_invalid_environment_names_the_key(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=needle):
        load_settings()


def test_media_engine_knobs_are_not_unknown_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The benches' CALLVAULT_IO_URING and CALLVAULT_CAPTURE_POLL_MS (read by
    media/pump.py) do not stop a server from starting; a misspelt one does."""
    monkeypatch.setenv("CALLVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLVAULT_IO_URING", "0")
    monkeypatch.setenv("CALLVAULT_CAPTURE_POLL_MS", "20")
    assert load_settings().spool_dir == tmp_path / "spool"
    monkeypatch.setenv("CALLVAULT_CAPTURE_POLL", "20")
    with pytest.raises(SettingsError, match="CALLVAULT_CAPTURE_POLL "):
        load_settings()


def test_config_file_and_its_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.toml"
    good.write_text('sip_port = 5099\nhttp_host = "127.0.0.1"\n')
    assert load_settings(good).sip_port == 5099
    bad = tmp_path / "bad.toml"
    bad.write_text("rtp_port_min = 30000\nrtp_port_max = 30000\n")
    with pytest.raises(SettingsError, match="rtp_port_max"):
        load_settings(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="colour"):
        load_settings(unknown)


def test_cli_reports_invalid_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLVAULT_HTTP_PORT", "-1")
    assert main(["serve"]) == 2
    assert "http_port" in capsys.readouterr().err


def test_bootstrap_twice_creates_one_operator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "bootstrap", "--data-dir", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert "API token (shown once): cv_" in first
    assert main(["admin", "bootstrap", "--data-dir", str(tmp_path)]) == 0
    second = capsys.readouterr().out
    assert "already exists" in second and "cv_" not in second
    from callvault.db.engine import make_engine, make_sessionmaker
    from callvault.db.models import Operator

    engine = make_engine(f"sqlite:///{tmp_path / 'callvault.db'}")
    with make_sessionmaker(engine)() as session:
        assert session.query(Operator).count() == 1
    engine.dispose()


def test_demo_records_calls(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    done = subprocess.run(
        [sys.executable, "-m", "callvault", "demo", "--exit", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    mp3s = list((tmp_path / "demo" / "recordings").glob("*.mp3"))
    assert len(mp3s) == 2, done.stdout
    assert "1 call not recorded" in done.stdout
    from callvault.media.analysis import tone_spans
    from callvault.recording.mp3 import decode_mp3

    tones = []
    for path in mp3s:
        pcm, rate = decode_mp3(path.read_bytes())
        tones.append(sum(e - s for s, e in tone_spans(pcm[0], rate, 440.0)))
    assert max(tones) > 3.0  # Bram's 440 Hz on the left channel of the tone call

    # the portal's demo: three logins printed, annotations made through the routes (audited)
    for role in ("admin", "listener", "user"):
        assert re.search(rf"^  {role}\s+\S+\s+\S{{16}}  sees ", done.stdout, re.M), done.stdout
    assert re.search(r"share link of Anna's call .*http://127\.0\.0\.1:\d+/s/\S+", done.stdout)
    from sqlalchemy import func, select

    from callvault.db.engine import make_engine, make_sessionmaker
    from callvault.db.models import AuditEvent, RecordingComment, RecordingLabel, ShareLink

    engine = make_engine(f"sqlite:///{(tmp_path / 'demo' / 'callvault.db').resolve()}")
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(RecordingLabel)) == 3
        assert session.scalar(select(func.count()).select_from(RecordingComment)) == 1
        assert session.scalar(select(func.count()).select_from(ShareLink)) == 1
        actions = set(session.scalars(select(AuditEvent.action)))
    engine.dispose()
    assert {"user.credentials", "team.create", "team.member", "label.add", "comment.add"} <= actions
    assert "share.create" in actions
