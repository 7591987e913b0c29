"""The phone harness itself: two baresip phones call each other directly, no callvault.

If this fails, every B2BUA test built on ``Phone`` would fail for the
harness's sake, not callvault's: it proves each phone sends its own tone,
hears the other's (by frequency, for most of the call), that a pressed key
arrives as an RFC 4733 event, and that hold and resume pass.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.b2bua.phones import TONE_A_HZ, TONE_B_HZ, Phone, covered, free_port, spans, tone

pytestmark = pytest.mark.peer("baresip", why="Debian package baresip-core: the phones")

CALL_S = 3.0


async def test_two_phones_hear_each_other(tmp_path: Path) -> None:
    a = Phone(tmp_path / "a", "sip:alice@acme.example", "127.0.0.2", tone(TONE_A_HZ, 20))
    b = Phone(tmp_path / "b", "sip:+31612345678@pstn.example", "127.0.0.3", tone(TONE_B_HZ, 20))
    async with a, b:
        await a.dial(b.uri)
        await a.wait_event("CALL_ESTABLISHED")
        await b.wait_event("CALL_ESTABLISHED")
        await asyncio.sleep(CALL_S / 2)
        await a.press("*1")
        await asyncio.sleep(CALL_S / 2)
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
    report = a.log() + b.log()
    for phone, own, other in ((a, TONE_A_HZ, TONE_B_HZ), (b, TONE_B_HZ, TONE_A_HZ)):
        heard = phone.heard()
        seconds = len(heard) / 8000
        assert CALL_S - 0.5 < seconds < CALL_S + 2, (phone.aor, seconds, report)
        assert covered(spans(heard, other)) > seconds - 0.6, (phone.aor, report)
        assert covered(spans(heard, own)) == 0, (phone.aor, report)
        assert covered(spans(phone.sent(), own)) > seconds - 0.6, (phone.aor, report)
    assert b.digits_heard() == ["*", "1"], (b.events, report)


async def test_hold_and_resume_between_phones(tmp_path: Path) -> None:
    a = Phone(tmp_path / "a", "sip:alice@acme.example", "127.0.0.2", tone(TONE_A_HZ, 20))
    b = Phone(tmp_path / "b", "sip:bob@pstn.example", "127.0.0.3", tone(TONE_B_HZ, 20))
    async with a, b:
        await a.dial(b.uri)
        await a.wait_event("CALL_ESTABLISHED")
        await asyncio.sleep(1.0)
        await a.hold()
        await asyncio.sleep(0.5)
        on_hold = await b.rtp_received()
        await asyncio.sleep(0.5)
        assert await b.rtp_received() == on_hold  # a held phone sends nothing
        await a.resume()
        await asyncio.sleep(1.0)
        resumed = await b.rtp_received()
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
    trace = b.sip_trace()
    # the re-INVITEs B received: hold (sendonly), then resume (sendrecv)
    offers = re.findall(r"INVITE sip:.*?a=(sendonly|sendrecv|recvonly|inactive)", trace, re.S)
    assert offers == ["sendrecv", "sendonly", "sendrecv"], (offers, a.log() + b.log())
    assert resumed - on_hold > 30, (on_hold, resumed)  # 50 packets a second again
    # what B heard before the hold (baresip's dump ends at the hold: see phones.py)
    assert covered(spans(b.heard(), TONE_A_HZ)) > 0.8, b.log()


@pytest.mark.parametrize("holder", ["another-phone", "its-own-sip"])
async def test_a_taken_control_port_still_gives_the_phone_its_own_channel(
    tmp_path: Path, holder: str
) -> None:
    """baresip 1.0 runs on when ctrl_tcp cannot listen; the harness must then not talk
    to whoever holds the port (the phone's own SIP TCP listener: no event ever comes;
    another phone: its channel would be taken), but start the phone on another port."""
    x = Phone(tmp_path / "x", "sip:xavier@pstn.example", "127.0.0.3", tone(TONE_A_HZ, 10))
    async with x:
        b = Phone(tmp_path / "b", "sip:bob@pstn.example", "127.0.0.3", tone(TONE_B_HZ, 10))
        if holder == "another-phone":
            b.ctrl_port = x.ctrl_port
        else:
            b.sip_port = free_port("127.0.0.3", span=2)
            b.ctrl_port = b.sip_port
        taken = b.ctrl_port
        async with b:
            assert "sip:bob@pstn.example" in await b.command("reginfo")
            await x.dial(b.uri)
            await b.wait_event("CALL_ESTABLISHED")
            await x.wait_event("CALL_ESTABLISHED")
            await x.hangup()
            await b.wait_event("CALL_CLOSED")
        assert b.ctrl_port != taken
        # the other phone kept its own channel throughout
        assert "sip:xavier@pstn.example" in await x.command("reginfo")
        assert x.seen("CALL_CLOSED"), x.events
