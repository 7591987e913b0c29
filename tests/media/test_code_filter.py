"""Short-code hiding on RFC 4733 events (media/code_filter.py), with a passed clock."""

from __future__ import annotations

from callvault.media.code_filter import CodeFilter
from callvault.media.dtmf import DIGIT_EVENTS, TelephoneEvent
from callvault.media.rtp import RtpPacket


class Sender:
    """RFC 4733 section 2.5 packets of key presses: start, updates, three ends."""

    def __init__(self) -> None:
        self.seq = 0
        self.ts = 0

    def press(self, digit: str, updates: int = 2) -> list[bytes]:
        self.ts += 8000
        packets = []
        for n in range(updates + 1):
            packets.append(self._packet(digit, 400 * (n + 1), end=False))
        packets.extend(self._packet(digit, 400 * (updates + 1), end=True) for _ in range(3))
        return packets

    def _packet(self, digit: str, duration: int, end: bool) -> bytes:
        self.seq += 1
        payload = bytes(TelephoneEvent(DIGIT_EVENTS[digit], end, 10, duration))
        return bytes(RtpPacket(101, self.seq, self.ts, 42, payload, marker=duration == 400))


def feed_all(f: CodeFilter, packets: list[bytes], now_ms: int) -> list[bytes]:
    out: list[bytes] = []
    for p in packets:
        out += f.feed(p, now_ms)
    return out


def test_the_whole_code_is_dropped_and_its_late_end_packets_too() -> None:
    f, s = CodeFilter("*1"), Sender()
    star, one = s.press("*"), s.press("1")
    assert feed_all(f, star, 0) == []
    assert f.deadline_ms == 1500
    assert feed_all(f, one[:2], 200) == []
    assert f.deadline_ms is None  # complete: nothing held any more
    assert feed_all(f, one[2:], 250) == []  # the rest of the last digit
    assert f.feed(star[-1], 300) == []  # a late retransmitted end of the first
    assert f.hidden_digits == 2
    assert f.due(10_000) == []


def test_a_diverging_digit_releases_the_held_ones_in_order() -> None:
    f, s = CodeFilter("*1"), Sender()
    star, five = s.press("*"), s.press("5")
    assert feed_all(f, star, 0) == []
    out = feed_all(f, five, 100)
    assert out == star + five
    assert f.hidden_digits == 0 and f.released_packets == len(star)
    assert f.feed(star[-1], 200) == [star[-1]]  # released events stay released


def test_a_repeated_star_starts_the_code_again() -> None:
    f, s = CodeFilter("*1"), Sender()
    first, second, one = s.press("*"), s.press("*"), s.press("1")
    assert feed_all(f, first, 0) == []
    assert f.feed(second[0], 100) == first  # the first * was an ordinary key
    assert feed_all(f, second[1:] + one, 150) == []
    assert f.hidden_digits == 2


def test_held_digits_are_released_after_the_hold_time_without_packets() -> None:
    f, s = CodeFilter("*1"), Sender()
    star = s.press("*")
    feed_all(f, star, 1000)
    assert f.due(2499) == []
    assert f.due(2500) == star
    assert f.deadline_ms is None
    one = s.press("1")  # too late: on its own, "1" is no prefix of the code
    assert feed_all(f, one, 2600) == one


def test_a_long_press_is_not_released_while_its_packets_come() -> None:
    f, s = CodeFilter("*1"), Sender()
    star = s.press("*", updates=40)
    for n, p in enumerate(star):
        assert f.feed(p, 50 * n) == []
        assert f.due(50 * n) == []


def test_a_single_key_code_is_dropped_at_once_and_other_keys_pass() -> None:
    f, s = CodeFilter("#"), Sender()
    hash_, two = s.press("#"), s.press("2")
    assert feed_all(f, hash_, 0) == []
    assert feed_all(f, two, 10) == two
    assert f.hidden_digits == 1


def test_non_digit_events_and_junk_pass() -> None:
    f = CodeFilter("*1")
    flash_tone = bytes(RtpPacket(101, 1, 5, 42, bytes(TelephoneEvent(70, False, 10, 400))))
    assert f.feed(flash_tone, 0) == [flash_tone]
    junk = bytes(RtpPacket(101, 2, 6, 42, b"\x01"))
    assert f.feed(junk, 0) == [junk]
