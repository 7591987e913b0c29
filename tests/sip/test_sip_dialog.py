"""Dialog (RFC 3261 section 12) and session timer (RFC 4028) tests."""

from __future__ import annotations

import pytest
from sipmessage import Request

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.sip.dialog import Dialog, DialogSet, SessionIntervalTooSmall, SessionTimer
from callvault.sip.message import build_response, parse_message, tag_of


def invite(extra: str = "", cseq: int = 10, method: str = "INVITE", to_tag: str = "") -> Request:
    data = (
        f"{method} sip:rs@192.0.2.10 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx1\r\n"
        "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
        "From: \"SRC\" <sip:src@example.com>;tag=from1\r\n"
        f"To: <sip:rs@example.com>{to_tag}\r\n"
        "Call-ID: dlg-1@example.com\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:src@192.0.2.1:5060;transport=udp>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def test_uas_dialog_and_in_dialog_requests() -> None:
    dialog = Dialog.from_incoming_invite(invite(), "local1", "<sip:rs@192.0.2.10:5060>")
    assert dialog.id == ("dlg-1@example.com", "local1", "from1")
    assert dialog.remote_target.host == "192.0.2.1"
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    bye = dialog.create_request("BYE")
    assert bye.uri.host == "192.0.2.1"
    assert bye.headers.getlist("Route") == dialog.route_set
    assert tag_of(bye.headers["From"]) == "local1" and tag_of(bye.headers["To"]) == "from1"
    assert bye.headers["CSeq"] == "1 BYE"
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.headers["CSeq"] == "2 INVITE"
    assert reinvite.headers["Contact"] == "<sip:rs@192.0.2.10:5060>"
    assert reinvite.headers["Content-Type"] == "application/sdp"
    with pytest.raises(LocalProtocolError):
        dialog.create_request("ACK")


def test_validate_in_dialog_requests() -> None:
    dialog = Dialog.from_incoming_invite(invite(), "local1", "<sip:rs@192.0.2.10>")
    dialogs = DialogSet()
    dialogs.add(dialog)
    up = invite(cseq=11, method="UPDATE", to_tag=";tag=local1")
    up.headers.set("Contact", "<sip:src@192.0.2.99>")
    assert dialogs.lookup(up) is dialog
    dialog.validate_request(up)
    assert dialog.remote_target.host == "192.0.2.99"
    old = invite(cseq=5, method="INFO", to_tag=";tag=local1")
    with pytest.raises(RemoteProtocolError) as info:
        dialog.validate_request(old)
    assert info.value.status == 500
    stranger = invite(cseq=12, method="BYE", to_tag=";tag=nope")
    with pytest.raises(RemoteProtocolError) as info:
        dialogs.lookup(stranger)
    assert info.value.status == 481


def test_uac_dialog_and_ack() -> None:
    request = invite()
    ok = build_response(request, 200, to_tag="remote9")
    ok.headers.add("Contact", "<sip:rs@192.0.2.10:5080>")
    dialog = Dialog.from_outgoing_invite(request, ok)
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    ack = dialog.create_ack(10)
    assert ack.headers["CSeq"] == "10 ACK" and ack.uri.port == 5080
    assert dialog.create_request("BYE").headers["CSeq"] == "11 BYE"


def test_strict_route() -> None:
    request = invite()
    request.headers.setlist("Record-Route", ["<sip:strict.example.com>"])
    dialog = Dialog.from_incoming_invite(request, "l", "<sip:rs@192.0.2.10>")
    bye = dialog.create_request("BYE")
    assert bye.uri.host == "strict.example.com"
    assert bye.headers.getlist("Route")[-1].startswith("<sip:src@192.0.2.1")


def test_missing_contact_is_remote_error() -> None:
    request = invite()
    request.headers.remove("Contact")
    with pytest.raises(RemoteProtocolError):
        Dialog.from_incoming_invite(request, "l", "<sip:rs@192.0.2.10>")


def test_session_timer_negotiation() -> None:
    timer = SessionTimer()
    headers = timer.negotiate(invite("Supported: timer\r\nSession-Expires: 1800\r\n"), 100.0)
    assert headers == [("Session-Expires", "1800;refresher=uac"), ("Require", "timer")]
    assert timer.expires_at(100.0) == pytest.approx(100 + 1800 - 32)
    timer.refresh(900.0)
    assert timer.expires_at(900.0) == pytest.approx(900 + 1800 - 32)
    assert timer.refresh_due_at() is None

    timer = SessionTimer()
    assert timer.negotiate(invite("x: 120;refresher=uas\r\nk: timer\r\n"), 0.0)[0] == (
        "Session-Expires", "120;refresher=uas")
    assert timer.expires_at(0.0) == pytest.approx(120 - 32)

    timer = SessionTimer()  # proxy asked for a timer, UAC cannot refresh: we do
    assert timer.negotiate(invite("Session-Expires: 600\r\n"), 0.0) == [
        ("Session-Expires", "600;refresher=uas")]
    assert timer.refresh_due_at() == 300

    timer = SessionTimer()  # UAC supports but did not ask: we pick the interval
    assert timer.negotiate(invite("Supported: timer\r\nMin-SE: 2000\r\n"), 0.0)[0] == (
        "Session-Expires", "2000;refresher=uac")

    timer = SessionTimer()
    assert timer.negotiate(invite(), 0.0) == [] and timer.expires_at(0.0) is None


def test_session_timer_too_small_and_malformed() -> None:
    with pytest.raises(SessionIntervalTooSmall) as info:
        SessionTimer().negotiate(invite("Supported: timer\r\nSession-Expires: 30\r\n"), 0.0)
    assert info.value.status == 422 and info.value.headers == [("Min-SE", "90")]
    with pytest.raises(RemoteProtocolError) as bad:
        SessionTimer().negotiate(invite("Session-Expires: soon\r\n"), 0.0)
    assert bad.value.status == 400


def test_session_timer_ceiling_reduces_the_interval() -> None:
    """RFC 4028 section 9: the UAS may lower Session-Expires in its 2xx, not below Min-SE."""
    timer = SessionTimer(max_interval=600)
    headers = timer.negotiate(invite("Supported: timer\r\nSession-Expires: 7200\r\n"), 0.0)
    assert headers[0] == ("Session-Expires", "600;refresher=uac")
    assert timer.interval == 600
    assert timer.expires_at(0.0) == pytest.approx(600 - 32)

    timer = SessionTimer(max_interval=600)  # within the ceiling: unchanged
    assert timer.negotiate(invite("k: timer\r\nx: 300\r\n"), 0.0)[0] == (
        "Session-Expires", "300;refresher=uac")

    timer = SessionTimer(max_interval=600)  # the request's Min-SE wins over our ceiling
    headers = timer.negotiate(
        invite("Supported: timer\r\nSession-Expires: 7200\r\nMin-SE: 1000\r\n"), 0.0)
    assert headers[0] == ("Session-Expires", "1000;refresher=uac")

    timer = SessionTimer(default_interval=1800, max_interval=600)  # we pick: at most the ceiling
    assert timer.negotiate(invite("Supported: timer\r\n"), 0.0)[0] == (
        "Session-Expires", "600;refresher=uac")

    timer = SessionTimer(max_interval=600)  # UAC without timer support: still capped, we refresh
    assert timer.negotiate(invite("Session-Expires: 3600\r\n"), 0.0) == [
        ("Session-Expires", "600;refresher=uas")]
    assert timer.refresh_due_at() == 300

    timer = SessionTimer(max_interval=120)  # re-INVITE asking for more is capped again
    timer.negotiate(invite("k: timer\r\nx: 100\r\n"), 0.0)
    assert timer.negotiate(invite("k: timer\r\nx: 5000\r\n", cseq=11), 50.0)[0] == (
        "Session-Expires", "120;refresher=uac")


def test_session_timer_ceiling_below_min_se_is_refused() -> None:
    with pytest.raises(ValueError, match="below min_se"):
        SessionTimer(min_se=300, max_interval=200)
    with pytest.raises(ValueError, match="at least 90"):
        SessionTimer(min_se=60)
