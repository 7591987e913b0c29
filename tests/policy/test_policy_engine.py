"""The policy engine against the SPEC section 3 table, scenario by scenario.

Times are in seconds in the scenarios (converted to ms); the call is answered
at 0 s and hung up at 100 s unless a scenario says otherwise. ``code(t)``
presses ``*`` at t - 0.3 s and the code's digit at t (each key 0.1 s long),
so the code fires at t.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from callvault.errors import LocalProtocolError
from callvault.policy.engine import (
    Answer,
    Decision,
    Digit,
    Hangup,
    PartyChange,
    PolicyEngine,
    PolicyEvent,
    Segment,
    SrcPause,
    SrcResume,
)
from callvault.policy.modes import Mode, ShortCode

S = 1000
KEY_MS = 100
END = 100 * S

NEVER, ALWAYS, PAUSE, KEEP, USER, PLAYBACK = (
    Mode.NEVER,
    Mode.ALWAYS,
    Mode.ALWAYS_PAUSE,
    Mode.ON_DEMAND_KEEP,
    Mode.ON_DEMAND_USER,
    Mode.PLAYBACK,
)


def ms(seconds: float) -> int:
    return round(seconds * S)


def code(t: float, side: str = "user", digit: str = "1") -> list[PolicyEvent]:
    assert side in ("user", "other")
    return [
        Digit(ms(t) - 300, "*", side, KEY_MS),  # type: ignore[arg-type]
        Digit(ms(t), digit, side, KEY_MS),  # type: ignore[arg-type]
    ]


def pause(start: float, end: float | None = None) -> list[PolicyEvent]:
    out: list[PolicyEvent] = [SrcPause(ms(start))]
    if end is not None:
        out.append(SrcResume(ms(end)))
    return out


def span(t: float) -> tuple[int, int]:
    return (ms(t) - 300, ms(t) + KEY_MS)


def run(
    mode: Mode,
    events: Sequence[PolicyEvent],
    *,
    user_id: int | None = 7,
    answer: bool = True,
    end: int = END,
    **kwargs: object,
) -> Decision:
    engine = PolicyEngine(mode, user_id=user_id, **kwargs)  # type: ignore[arg-type]
    stream = ([Answer(0)] if answer else []) + sorted(events, key=lambda e: e.t) + [Hangup(end)]
    for event in stream:
        engine.feed(event)
    return engine.decision()


def feed_all(engine: PolicyEngine, events: Sequence[PolicyEvent]) -> None:
    for event in events:
        engine.feed(event)


def segs(*pairs: tuple[float, float], user: int | None = 7) -> tuple[Segment, ...]:
    return tuple(Segment(ms(a), ms(b), user) for a, b in pairs)


# scenario -> (events, code spans, {mode: segments}); playback is saved iff a code fired.
WHOLE = ((0, 100),)
SCENARIOS: dict[
    str,
    tuple[list[PolicyEvent], list[tuple[int, int]], dict[Mode, tuple[tuple[float, float], ...]]],
] = {
    "no code": (
        [],
        [],
        {NEVER: (), ALWAYS: WHOLE, PAUSE: WHOLE, KEEP: (), USER: (), PLAYBACK: WHOLE},
    ),
    "code once": (
        code(10),
        [span(10)],
        {
            NEVER: (),
            ALWAYS: WHOLE,
            PAUSE: ((0, 10),),
            KEEP: WHOLE,
            USER: ((10, 100),),
            PLAYBACK: WHOLE,
        },
    ),
    "code twice": (
        code(10) + code(20),
        [span(10), span(20)],
        {
            NEVER: (),
            ALWAYS: WHOLE,
            PAUSE: ((0, 10), (20, 100)),
            KEEP: ((0, 20),),
            USER: ((10, 20),),
            PLAYBACK: WHOLE,
        },
    ),
    "code three times": (
        code(10) + code(20) + code(30),
        [span(10), span(20), span(30)],
        {
            NEVER: (),
            ALWAYS: WHOLE,
            PAUSE: ((0, 10), (20, 30)),
            KEEP: ((0, 20), (30, 100)),
            USER: ((10, 20), (30, 100)),
            PLAYBACK: WHOLE,
        },
    ),
    "code then SRC pause": (
        code(10) + pause(40, 50),
        [span(10)],
        {
            NEVER: (),
            ALWAYS: ((0, 40), (50, 100)),
            PAUSE: ((0, 10),),
            KEEP: ((0, 40), (50, 100)),
            USER: ((10, 40), (50, 100)),
            PLAYBACK: ((0, 40), (50, 100)),
        },
    ),
    "SRC pause then code twice": (
        pause(5, 8) + code(10) + code(20),
        [span(10), span(20)],
        {
            NEVER: (),
            ALWAYS: ((0, 5), (8, 100)),
            PAUSE: ((0, 5), (8, 10), (20, 100)),
            KEEP: ((0, 5), (8, 20)),
            USER: ((10, 20),),
            PLAYBACK: ((0, 5), (8, 100)),
        },
    ),
    "code pressed during an SRC pause": (
        code(10) + pause(15, 25) + code(20),
        [span(10), span(20)],
        {
            NEVER: (),
            ALWAYS: ((0, 15), (25, 100)),
            PAUSE: ((0, 10), (25, 100)),
            KEEP: ((0, 15),),
            USER: ((10, 15),),
            PLAYBACK: ((0, 15), (25, 100)),
        },
    ),
    "other side presses the code": (
        code(10, side="other") + code(20, side="other"),
        [],
        {NEVER: (), ALWAYS: WHOLE, PAUSE: WHOLE, KEEP: (), USER: (), PLAYBACK: WHOLE},
    ),
    "other side keys inside the user's code": (
        [
            Digit(ms(9.7), "*", "user", KEY_MS),
            Digit(ms(9.8), "*", "other", KEY_MS),
            Digit(ms(9.85), "1", "other", KEY_MS),
            Digit(ms(9.9), "5", "other", KEY_MS),
            Digit(ms(10), "1", "user", KEY_MS),
        ],
        [span(10)],
        {
            NEVER: (),
            ALWAYS: WHOLE,
            PAUSE: ((0, 10),),
            KEEP: WHOLE,
            USER: ((10, 100),),
            PLAYBACK: WHOLE,
        },
    ),
    "code split across the timeout": (
        [Digit(ms(10), "*", "user", KEY_MS), Digit(ms(13.5), "1", "user", KEY_MS)],
        [],
        {NEVER: (), ALWAYS: WHOLE, PAUSE: WHOLE, KEEP: (), USER: (), PLAYBACK: WHOLE},
    ),
    "wrong digit, then the code": (
        [
            Digit(ms(9), "*", "user"),
            Digit(ms(9.2), "2", "user"),
            Digit(ms(9.5), "1", "user"),
            *code(10),
        ],
        [span(10)],
        {
            NEVER: (),
            ALWAYS: WHOLE,
            PAUSE: ((0, 10),),
            KEEP: WHOLE,
            USER: ((10, 100),),
            PLAYBACK: WHOLE,
        },
    ),
    "hang-up during an SRC pause": (
        code(10) + pause(90),
        [span(10)],
        {
            NEVER: (),
            ALWAYS: ((0, 90),),
            PAUSE: ((0, 10),),
            KEEP: ((0, 90),),
            USER: ((10, 90),),
            PLAYBACK: ((0, 90),),
        },
    ),
    "hang-up while paused by the code": (
        code(10) + code(95),
        [span(10), span(95)],
        {
            NEVER: (),
            ALWAYS: WHOLE,
            PAUSE: ((0, 10), (95, 100)),
            KEEP: ((0, 95),),
            USER: ((10, 95),),
            PLAYBACK: WHOLE,
        },
    ),
}


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_mode_table(scenario: str, mode: Mode) -> None:
    events, spans, expected = SCENARIOS[scenario]
    decision = run(mode, events)
    assert decision.segments == segs(*expected[mode])
    assert decision.keep is bool(expected[mode])
    assert decision.code_spans == tuple(spans)
    assert decision.users == ((7,) if expected[mode] else ())
    unsaved = mode is PLAYBACK and not spans
    assert decision.unsaved is unsaved
    assert decision.expires_days == (3 if unsaved else None)
    assert decision.reason


@pytest.mark.parametrize(
    ("mode", "events", "reason"),
    [
        (NEVER, code(10), "mode never"),
        (ALWAYS, [], "mode always"),
        (PAUSE, code(12.3), "mode always_pause, code pressed at 12.3 s"),
        (KEEP, code(12.3) + code(20), "code pressed at 12.3 s"),
        (KEEP, [], "mode on_demand_keep, code not pressed"),
        (USER, code(12.3), "code pressed at 12.3 s"),
        (USER, [], "mode on_demand_user, code not pressed"),
        (PLAYBACK, code(42), "playback saved, code pressed at 42.0 s"),
        (PLAYBACK, [], "playback, code not pressed: unsaved for 3 days"),
        (ALWAYS, pause(0), "mode always, but no audio outside SRC pauses"),
    ],
)
def test_reasons(mode: Mode, events: list[PolicyEvent], reason: str) -> None:
    assert run(mode, events).reason == reason


def test_whole_call_under_src_pause_keeps_nothing() -> None:
    decision = run(ALWAYS, pause(0))
    assert not decision.keep
    assert decision.segments == ()


@pytest.mark.parametrize("mode", list(Mode))
def test_hang_up_before_answer_keeps_nothing(mode: Mode) -> None:
    decision = run(mode, code(10), answer=False, contact_rule="whitelist")
    assert decision == Decision(False, "not answered", (), (), False, None, ())


def test_keys_before_the_answer_are_ignored() -> None:
    engine = PolicyEngine(USER, user_id=7)
    feed_all(engine, [Digit(100, "*", "user"), Answer(200), Digit(300, "1", "user"), Hangup(END)])
    assert not engine.decision().keep
    assert engine.decision().code_spans == ()


def test_other_short_code_digit() -> None:
    decision = run(USER, code(10) + code(20, digit="5"), code=ShortCode.parse("*5"))
    assert decision.segments == segs((20, 100))
    assert decision.code_spans == (span(20),)


def test_star_restarts_the_entry() -> None:
    events = [Digit(ms(5), "*", "user"), Digit(ms(9.6), "*", "user"), Digit(ms(10), "1", "user")]
    decision = run(USER, events)
    assert decision.segments == segs((10, 100))
    assert decision.code_spans == ((ms(9.6), ms(10)),)


@pytest.mark.parametrize(("gap", "fires"), [(3000, True), (3001, False)])
def test_code_timeout_is_inclusive(gap: int, fires: bool) -> None:
    events = [Digit(10_000, "*", "user"), Digit(10_000 + gap, "1", "user")]
    assert run(USER, events).keep is fires
    assert run(USER, events, code_timeout_ms=gap).keep


def test_recording_is_live() -> None:
    engine = PolicyEngine(USER, user_id=7)
    seen = []
    for event in [Answer(0), *code(10), SrcPause(ms(15)), SrcResume(ms(16)), *code(20)]:
        engine.feed(event)
        seen.append(engine.recording)
    assert seen == [False, False, True, False, True, True, False]
    engine.feed(Hangup(END))
    assert not engine.recording


def test_provisional_capture_counts_as_recording() -> None:
    engine = PolicyEngine(KEEP)
    engine.feed(Answer(0))
    assert engine.recording


def test_events_out_of_order_are_a_local_error() -> None:
    engine = PolicyEngine(ALWAYS)
    engine.feed(Answer(1000))
    with pytest.raises(LocalProtocolError, match="earlier"):
        engine.feed(Digit(999, "*", "user"))
    engine.feed(Digit(1000, "*", "user"))  # equal times are fine


@pytest.mark.parametrize(
    "events",
    [
        [Answer(0), Answer(1)],
        [Answer(0), Hangup(1), Digit(2, "1", "user")],
        [Hangup(1), Hangup(2)],
        [Answer(0), Hangup(1), Answer(2)],
    ],
)
def test_illegal_moves_are_a_local_error(events: list[PolicyEvent]) -> None:
    engine = PolicyEngine(ALWAYS)
    with pytest.raises(LocalProtocolError, match="not allowed"):
        for event in events:
            engine.feed(event)


def test_no_decision_before_hang_up() -> None:
    engine = PolicyEngine(ALWAYS)
    engine.feed(Answer(0))
    with pytest.raises(LocalProtocolError, match="before hang-up"):
        engine.decision()


def test_repeated_src_pause_and_resume_are_harmless() -> None:
    events: list[PolicyEvent] = [SrcPause(ms(10)), SrcPause(ms(11))]
    events += [SrcResume(ms(20)), SrcResume(ms(21))]
    assert run(ALWAYS, events).segments == segs((0, 10), (20, 100))


def test_src_pause_before_answer_holds_until_resumed() -> None:
    engine = PolicyEngine(ALWAYS, user_id=7)
    feed_all(engine, [SrcPause(0), Answer(ms(1)), SrcResume(ms(5)), Hangup(END)])
    assert engine.decision().segments == segs((5, 100))


def test_code_toggled_twice_at_one_instant_leaves_one_segment() -> None:
    events: list[PolicyEvent] = [Digit(ms(50), "*", "user"), Digit(ms(50), "1", "user")] * 2
    assert run(PAUSE, events).segments == segs((0, 100))
    events = [SrcPause(ms(50)), SrcResume(ms(50))]
    assert run(ALWAYS, events).segments == segs((0, 100))


# -- party changes (transfers) --


def change(t: float, user: int | None, mode: Mode) -> PartyChange:
    return PartyChange(ms(t), user, mode)


@pytest.mark.parametrize(
    ("first", "events", "expected", "unsaved"),
    [
        (USER, [*code(10), change(50, 9, USER), *code(60)], [(10, 50, 7), (60, 100, 9)], False),
        (USER, [*code(10), change(50, 9, USER)], [(10, 50, 7)], False),
        (ALWAYS, [change(50, 9, KEEP)], [(0, 50, 7)], False),
        (KEEP, [change(50, 9, ALWAYS)], [(50, 100, 9)], False),
        (KEEP, [change(50, 9, KEEP), *code(70)], [(50, 100, 9)], False),
        (KEEP, [*code(10), change(50, 9, KEEP)], [(0, 50, 7)], False),
        (PAUSE, [*code(10), change(50, 9, PAUSE)], [(0, 10, 7), (50, 100, 9)], False),
        (PLAYBACK, [change(50, 9, ALWAYS)], [(0, 50, 7), (50, 100, 9)], False),
        (PLAYBACK, [change(50, 9, PLAYBACK)], [(0, 50, 7), (50, 100, 9)], True),
        (PLAYBACK, [change(50, 9, PLAYBACK), *code(60)], [(0, 50, 7), (50, 100, 9)], False),
        (NEVER, [*code(10), change(50, 9, NEVER), *code(60)], [], False),
        (ALWAYS, [change(50, 7, ALWAYS)], [(0, 50, 7), (50, 100, 7)], False),
        (ALWAYS, [change(50, None, ALWAYS)], [(0, 50, 7), (50, 100, None)], False),
        (
            ALWAYS,
            [*pause(40, 60), change(50, 9, ALWAYS)],
            [(0, 40, 7), (60, 100, 9)],
            False,
        ),
        # A half-entered code does not carry over to the new user.
        (
            USER,
            [Digit(ms(49.9), "*", "user"), change(50, 9, USER), Digit(ms(50.1), "1", "user")],
            [],
            False,
        ),
    ],
)
def test_party_change(
    first: Mode,
    events: list[PolicyEvent],
    expected: list[tuple[float, float, int | None]],
    unsaved: bool,
) -> None:
    decision = run(first, events)
    assert decision.segments == tuple(Segment(ms(a), ms(b), u) for a, b, u in expected)
    assert decision.keep is bool(expected)
    assert decision.users == tuple(dict.fromkeys(u for _, _, u in expected if u is not None))
    assert decision.unsaved is unsaved


def test_party_change_before_answer_applies_from_the_answer() -> None:
    engine = PolicyEngine(NEVER, user_id=7)
    feed_all(engine, [PartyChange(0, 9, ALWAYS), Answer(ms(2)), Hangup(END)])
    assert engine.decision().segments == (Segment(ms(2), END, 9),)
    assert engine.decision().users == (9,)


def test_party_change_reason_names_both_users() -> None:
    decision = run(ALWAYS, [change(50, 9, USER)])
    assert decision.reason == (
        "from 0.0 s user 7: mode always; from 50.0 s user 9: mode on_demand_user, code not pressed"
    )


# -- contact rules --


@pytest.mark.parametrize("mode", list(Mode))
def test_blacklisted_contact_is_never_kept(mode: Mode) -> None:
    decision = run(mode, code(10), contact_rule="blacklist")
    assert decision == Decision(False, "contact on blacklist", (), (span(10),), False, None, ())


@pytest.mark.parametrize("mode", list(Mode))
def test_whitelisted_contact_keeps_the_whole_call(mode: Mode) -> None:
    decision = run(mode, code(10) + pause(30, 40), contact_rule="whitelist")
    assert decision.keep
    assert decision.reason == "contact on whitelist"
    assert decision.segments == segs((0, 30), (40, 100))
    assert not decision.unsaved
    assert decision.expires_days is None
    assert decision.users == (7,)


def test_whitelist_with_party_change() -> None:
    decision = run(NEVER, [change(50, 9, USER)], contact_rule="whitelist")
    assert decision.segments == (Segment(0, ms(50), 7), Segment(ms(50), END, 9))
    assert decision.users == (7, 9)


def test_whitelisted_playback_is_saved() -> None:
    decision = run(PLAYBACK, [], contact_rule="whitelist")
    assert decision.keep and not decision.unsaved


def test_transitions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="callvault.policy.engine"):
        run(USER, code(10))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3  # answer, code, hang-up
    assert "capture off -> on" in messages[1]


# -- a single-key code (the German manual's "DTMF-Taste") ----------------------


def press(t: float, key: str = "5", side: str = "user") -> list[PolicyEvent]:
    """One press of ``key`` at t (0.1 s long)."""
    return [Digit(ms(t), key, side, KEY_MS)]  # type: ignore[arg-type]


KEY_5 = ShortCode("5", single=True)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("times", [[], [10], [10, 20], [10, 20, 30], [10, 95]])
def test_single_key_acts_exactly_where_star_digit_would(mode: Mode, times: list[float]) -> None:
    """Each press of the key is one press of the code: same segments, same decision,
    only the cut spans are the key's own press instead of ``*`` to the digit."""
    star_digit = run(mode, [e for t in times for e in code(t)])
    single = run(mode, [e for t in times for e in press(t)], code=KEY_5)
    assert single.segments == star_digit.segments
    assert (single.keep, single.reason, single.unsaved) == (
        star_digit.keep,
        star_digit.reason,
        star_digit.unsaved,
    )
    assert single.code_spans == tuple((ms(t), ms(t) + KEY_MS) for t in times)


def test_single_key_toggles_on_demand_user_at_every_press() -> None:
    decision = run(USER, press(10) + press(20) + press(30) + press(40), code=KEY_5)
    assert decision.segments == segs((10, 20), (30, 40))


def test_single_key_ignores_the_other_party_and_other_keys() -> None:
    events = press(10, side="other") + press(12, "1") + press(14, "*") + code(16) + press(18, "#")
    decision = run(USER, events, code=KEY_5)
    assert not decision.keep
    assert decision.code_spans == ()
    # the other party's 5 in the middle of the user's recording changes nothing either
    decision = run(USER, press(10) + press(15, side="other") + press(20), code=KEY_5)
    assert decision.segments == segs((10, 20))
    assert decision.code_spans == ((ms(10), ms(10) + KEY_MS), (ms(20), ms(20) + KEY_MS))


def test_star_then_the_key_counts_as_the_key_alone() -> None:
    """With the key 5, ``*5`` is a stray ``*`` and one press of 5."""
    decision = run(USER, code(10, digit="5"), code=KEY_5)
    assert decision.segments == segs((10, 100))
    assert decision.code_spans == ((ms(10), ms(10) + KEY_MS),)


def test_a_lone_digit_is_not_the_star_digit_code() -> None:
    """The other way round: with ``*5`` a 5 without its ``*`` does nothing."""
    assert not run(USER, press(10), code=ShortCode.parse("*5")).keep


def test_single_star_key_is_every_star() -> None:
    """With the key ``*`` each ``*`` is the code; no digit is awaited, and the ``1`` of
    a ``*1`` is just another key."""
    decision = run(USER, code(10) + press(20, "*"), code=ShortCode.parse("*"))
    assert decision.segments == segs((9.7, 20))
    assert decision.code_spans == ((ms(9.7), ms(9.7) + KEY_MS), (ms(20), ms(20) + KEY_MS))


def test_single_hash_key() -> None:
    decision = run(PAUSE, press(10, "#") + press(20, "#"), code=ShortCode.parse("#"))
    assert decision.segments == segs((0, 10), (20, 100))


def test_single_key_after_a_party_change_belongs_to_the_new_user() -> None:
    events = [*press(10), PartyChange(ms(15), 8, USER), *press(20), *press(30)]
    decision = run(USER, events, code=KEY_5)
    assert decision.segments == segs((10, 15)) + segs((20, 30), user=8)
