"""The live policy: what may reach the disk while the call runs (SPEC section 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callvault.policy.live import CaptureGate, LivePolicy, RecordingSlot
from callvault.policy.modes import Mode, ShortCode
from callvault.recording.spool import SpoolReader, SpoolWriter


def slot(mode: Mode, *, key: str = "1.0", user: int = 7, pid: str = "alice", rule=None):  # type: ignore[no-untyped-def]
    return RecordingSlot(key, 1, user, pid, mode, ShortCode("1"), rule)


def press_code(policy: LivePolicy, t: int, sender: str | None = "alice") -> None:
    policy.key(t, "*", sender)
    policy.key(t + 300, "1", sender)


@pytest.mark.parametrize(
    ("mode", "open_after_answer"),
    [
        (Mode.ALWAYS, True),
        (Mode.ALWAYS_PAUSE, True),
        (Mode.ON_DEMAND_KEEP, True),
        (Mode.PLAYBACK, True),
        (Mode.ON_DEMAND_USER, False),
        (Mode.NEVER, False),
    ],
)
def test_the_gate_opens_at_the_answer_only_for_modes_that_may_keep(
    mode: Mode, open_after_answer: bool
) -> None:
    policy = LivePolicy()
    policy.set_slots(0, [slot(mode)])
    assert not policy.gate.is_open  # nothing before the answer
    policy.answer(100)
    assert policy.gate.is_open is open_after_answer
    assert policy.gate.open_at(50) is False
    assert policy.gate.open_at(5000) is open_after_answer


def test_on_demand_user_captures_from_the_press_to_the_next() -> None:
    policy = LivePolicy()
    policy.set_slots(0, [slot(Mode.ON_DEMAND_USER)])
    policy.answer(0)
    press_code(policy, 4000)
    assert policy.gate.is_open
    press_code(policy, 9000)
    assert not policy.gate.is_open
    assert policy.gate.windows(20000) == [(4300, 9300)]


def test_the_other_partys_keys_change_nothing() -> None:
    policy = LivePolicy()
    policy.set_slots(0, [slot(Mode.ON_DEMAND_USER)])
    policy.answer(0)
    press_code(policy, 4000, sender="bob")
    assert not policy.gate.is_open
    press_code(policy, 6000, sender=None)  # SIP INFO: the recorded user's keypad
    assert policy.gate.is_open


def test_always_pause_closes_while_paused() -> None:
    policy = LivePolicy()
    policy.set_slots(0, [slot(Mode.ALWAYS_PAUSE)])
    policy.answer(0)
    press_code(policy, 2000)
    assert not policy.gate.is_open
    press_code(policy, 5000)
    assert policy.gate.windows(8000) == [(0, 2300), (5300, 8000)]


def test_blacklisted_contact_never_opens_whitelisted_always_does() -> None:
    black = LivePolicy()
    black.set_slots(0, [slot(Mode.ALWAYS, rule="blacklist")])
    black.answer(0)
    assert not black.may_record and not black.gate.is_open
    white = LivePolicy()
    white.set_slots(0, [slot(Mode.NEVER, rule="whitelist")])
    white.answer(0)
    assert white.may_record and white.gate.is_open


def test_two_recordings_open_the_gate_together() -> None:
    policy = LivePolicy()
    policy.set_slots(
        0,
        [slot(Mode.NEVER, key="1.0", pid="alice"), slot(Mode.ON_DEMAND_USER, key="2.0", pid="bob")],
    )
    policy.answer(0)
    assert not policy.gate.is_open
    press_code(policy, 1000, sender="alice")  # alice's key: not bob's code
    assert not policy.gate.is_open
    press_code(policy, 3000, sender="bob")
    assert policy.gate.is_open and policy.capturing("2.0") and not policy.capturing("1.0")


def test_a_transfer_to_a_never_user_closes_the_gate() -> None:
    policy = LivePolicy()
    policy.set_slots(0, [slot(Mode.ALWAYS)])
    policy.answer(0)
    policy.set_slots(6000, [slot(Mode.NEVER, user=8, pid="carol")])
    assert policy.gate.windows(9000) == [(0, 6000)]
    policy.set_slots(7000, [])  # the user left the call altogether
    assert not policy.gate.is_open


def test_record_now_opens_the_gate_whatever_the_modes() -> None:
    policy = LivePolicy()
    policy.set_slots(0, [slot(Mode.NEVER)])
    policy.answer(0)
    policy.record_now(3000, True)
    assert policy.gate.is_open
    policy.record_now(4000, False)
    assert policy.gate.windows(5000) == [(3000, 4000)]


def test_late_events_count_at_the_latest_time() -> None:
    gate = CaptureGate()
    gate.set(1000, True)
    gate.set(500, False)  # reported late: audio up to 1000 is already out
    assert gate.windows(2000) == []
    gate.set(1500, True)
    gate.set(1500, False)  # open and shut at one instant: nothing
    assert gate.windows(3000) == [] and not gate.is_open


def test_the_spool_writes_only_what_the_gate_lets_through(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    stream = writer.stream(0)
    gate = CaptureGate()
    for t in range(0, 1000, 20):
        stream.append(t, b"\x80\x00" + bytes(10) + bytes([t // 20]))
    writer.flush(gate, 1000)
    assert not (tmp_path / "stream-0.rtp").exists()  # nothing may be kept: no file at all
    gate.set(1500, True)
    for t in range(1000, 2000, 20):
        stream.append(t, b"\x80\x00" + bytes(10) + bytes([t // 20 % 256]))
    writer.flush(gate, 2000)
    gate.set(2600, False)
    for t in range(2000, 3000, 20):
        stream.append(t, b"\x80\x00" + bytes(10) + bytes([t // 20 % 256]))
    writer.close(gate, 3000)
    arrivals = [t for t, _ in SpoolReader(tmp_path).packets(0)]
    assert arrivals == list(range(1500, 2600, 20))
    assert stream.dropped == 50 + 25 + 20


def test_a_single_key_code_toggles_the_gate_at_each_press() -> None:
    """The German manual's one key (here 5): each press of the user's 5 opens or
    closes the gate; the other party's 5 and the user's other keys do nothing."""
    policy = LivePolicy()
    policy.set_slots(
        0, [RecordingSlot("1.0", 1, 7, "alice", Mode.ON_DEMAND_USER, ShortCode.parse("5"))]
    )
    policy.answer(0)
    policy.key(2000, "5", "bob")
    policy.key(2500, "*", "alice")
    policy.key(2800, "1", "alice")
    assert not policy.gate.is_open
    policy.key(4000, "5", "alice")
    assert policy.gate.is_open
    policy.key(5000, "5", "bob")
    assert policy.gate.is_open
    policy.key(9000, "5", None)  # SIP INFO: the recorded user's keypad
    assert not policy.gate.is_open
    assert policy.gate.windows(20000) == [(4000, 9000)]


def test_a_key_heard_twice_counts_once() -> None:
    """RFC 4733 now and the same key's in-band tones at the next flush are one press:
    with a single key a second count would close the gate it just opened."""
    policy = LivePolicy()
    policy.set_slots(
        0, [RecordingSlot("1.0", 1, 7, "alice", Mode.ON_DEMAND_USER, ShortCode.parse("5"))]
    )
    policy.answer(0)
    policy.key(4000, "5", "alice")  # RFC 4733
    policy.key(3990, "5", "alice")  # in-band, heard a flush later
    assert policy.gate.is_open
    policy.key(4150, "5", None)  # the same press relayed as SIP INFO too
    assert policy.gate.is_open
    policy.key(6000, "5", "alice")  # a new press, well apart
    assert not policy.gate.is_open
    policy.key(6100, "5", "bob")  # the other party's, at once: not the same press
    policy.key(6400, "5", None)
    assert policy.gate.is_open
