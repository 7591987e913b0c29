"""`callvault check` names what is wrong, one line per finding, and exits non-zero.

Broken settings (a bad RTP range, a missing certificate), ports that overlap
or are taken, a certificate whose key does not match or that has expired, a
database written by a newer version, a blob store that cannot exist; and a
sound installation passes with 0.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from callvault.check import (
    Finding,
    check_certificates,
    check_database,
    check_ports,
    check_smtp,
    findings,
)
from callvault.cli import main
from callvault.db.engine import make_engine, migrate
from callvault.settings import Settings, load_settings
from tests.sip.tls_certs import self_signed


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CALLVAULT_"):
            monkeypatch.delenv(name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(tmp_path: Path, **values: Any) -> Settings:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "sip_port": _free_port(),
        "http_port": _free_port(),
        "rtp_port_min": 42000,
        "rtp_port_max": 42400,
    }
    return load_settings(**(defaults | values))


def _errors(found: list[Finding]) -> list[str]:
    return [f.line() for f in found if f.level == "error"]


def test_a_sound_installation_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    assert _errors(findings(settings)) == []
    monkeypatch.setenv("CALLVAULT_SIP_PORT", str(settings.sip_port))
    monkeypatch.setenv("CALLVAULT_HTTP_PORT", str(settings.http_port))
    monkeypatch.setenv("CALLVAULT_RTP_PORT_MIN", "42000")
    monkeypatch.setenv("CALLVAULT_RTP_PORT_MAX", "42400")
    assert main(["check", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out
    assert "skipped  smtp:" in out  # no mail server set: said, not hidden


@pytest.mark.parametrize(
    "name,value,needle",
    [
        ("CALLVAULT_RTP_PORT_MAX", "20001", "rtp_port_max"),  # range of one port
        ("CALLVAULT_SIP_TLS_CERT", "/nonexistent/sip.crt", "sip_tls_cert"),
        ("CALLVAULT_SIP_PORT", "70000", "sip_port"),
    ],
)
def test_broken_settings_are_named(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    value: str,
    needle: str,
) -> None:
    monkeypatch.setenv(name, value)
    if name == "CALLVAULT_SIP_TLS_CERT":
        monkeypatch.setenv("CALLVAULT_SIP_TLS_KEY", "/nonexistent/sip.key")
    assert main(["check", "--data-dir", str(tmp_path)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("error    settings:") and needle in line


def test_ports_overlapping_the_rtp_range_or_taken(tmp_path: Path) -> None:
    settings = _settings(tmp_path, http_port=42010, rtp_port_min=42000, rtp_port_max=42020)
    lines = _errors(list(check_ports(settings, busy=lambda *_: None)))
    assert any("http_port" in line and "inside the RTP range" in line for line in lines)
    small = [f for f in check_ports(settings, busy=lambda *_: None) if f.level == "warning"]
    assert small and "port pairs" in small[0].message

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = _settings(tmp_path, http_port=port)
        lines = _errors(list(check_ports(settings)))
    assert any(f"http_port: cannot bind 127.0.0.1:{port}/tcp" in line for line in lines), lines

    elsewhere = _settings(tmp_path, public_address="192.0.2.1")  # not this machine's
    lines = _errors(list(check_ports(elsewhere)))
    assert any(line.startswith("error    public_address: RTP cannot bind") for line in lines)

    same = _settings(tmp_path, sip_port=6100, http_port=6100)
    lines = _errors(list(check_ports(same, busy=lambda *_: None)))
    assert any("http_port: port 6100 is also sip_port" in line for line in lines), lines


def test_certificates_key_match_and_validity(tmp_path: Path) -> None:
    one, other = self_signed(tmp_path, "one"), self_signed(tmp_path, "other")
    mismatched = _settings(tmp_path, sip_tls_cert=one.cert, sip_tls_key=other.key)
    [finding] = check_certificates(mismatched)
    assert finding.level == "error" and "not the certificate's key" in finding.message

    good = _settings(tmp_path, sip_tls_cert=one.cert, sip_tls_key=one.key, sip_tls_ca=other.cert)
    now = datetime.now(UTC)
    soon, ca = check_certificates(good, now=now)  # valid two days: a warning
    assert soon.level == "warning" and "expires on" in soon.message
    assert ca.level == "ok" and ca.subject == "sip_tls_ca"
    [expired, _ca] = check_certificates(good, now=now + timedelta(days=3))
    assert expired.level == "error" and "expired on" in expired.message
    [early, _ca] = check_certificates(good, now=now - timedelta(days=1))
    assert early.level == "error" and "valid only from" in early.message

    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    bad_ca = _settings(tmp_path, sip_tls_cert=one.cert, sip_tls_key=one.key, sip_tls_ca=garbage)
    assert any(f.subject == "sip_tls_ca" and f.level == "error" for f in check_certificates(bad_ca))


def test_database_of_a_newer_version_and_an_impossible_blob_store(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    [fresh] = check_database(settings)
    assert fresh.level == "ok" and "does not exist yet" in fresh.message
    settings.data_dir.mkdir()
    migrate(settings.db_url)
    [at_head] = check_database(settings)
    assert at_head.level == "ok" and "newest schema" in at_head.message
    engine = make_engine(settings.db_url)
    with engine.begin() as connection:
        connection.execute(text("update alembic_version set version_num = '9999_future'"))
    engine.dispose()
    [newer] = check_database(settings)
    assert newer.level == "error" and "does not know" in newer.message

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    blocked = _settings(tmp_path, data_dir=not_a_dir)
    lines = _errors(findings(blocked))
    assert any(line.startswith("error    blob store:") for line in lines), lines


def test_the_mail_server_is_reached_and_an_unreachable_one_is_named(tmp_path: Path) -> None:
    """A real SMTP server (aiosmtpd) answers EHLO; a closed port is an error naming it."""

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    port = _free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        found = list(check_smtp(_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port)))
    finally:
        controller.stop()
    assert [(f.level, f.subject) for f in found] == [("ok", "smtp")]
    closed = _free_port()
    found = list(check_smtp(_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=closed)))
    assert [(f.level, f.subject) for f in found] == [("error", "smtp")]
    assert f"127.0.0.1:{closed}" in found[0].message and "cannot reach" in found[0].message
