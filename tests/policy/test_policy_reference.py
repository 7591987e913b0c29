"""The policy engine against a plain reference model, on long random event streams.

The reference model is written separately and as plainly as possible: first
find the answer, the hang-up, the users' stretches of the call and the SRC
pauses; then the code presses; then, per stretch and mode, the recorded
intervals by walking the presses; finally cut out the pauses. It shares no
code with the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.policy.engine import (
    Answer,
    Digit,
    Hangup,
    PartyChange,
    PolicyEngine,
    PolicyEvent,
    SrcPause,
    SrcResume,
)
from callvault.policy.modes import Mode, ShortCode

TIMEOUT = 3000
Side = Literal["user", "other"]
Rule = Literal["blacklist", "whitelist"] | None
RULES: list[Rule] = [None, None, None, "blacklist", "whitelist"]


@dataclass
class Expected:
    keep: bool
    segments: list[tuple[int, int, int | None]]
    code_spans: list[tuple[int, int]]
    unsaved: bool
    users: list[int]


def minus(intervals: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``intervals`` with the ``holes`` cut out, touching pieces joined, empty ones dropped."""
    pieces = intervals
    for hole_start, hole_end in holes:
        cut = []
        for start, end in pieces:
            if hole_end <= start or hole_start >= end:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        pieces = cut
    pieces = [(a, b) for a, b in sorted(pieces) if b > a]
    joined: list[tuple[int, int]] = []
    for a, b in pieces:
        if joined and joined[-1][1] >= a:
            joined[-1] = (joined[-1][0], max(joined[-1][1], b))
        else:
            joined.append((a, b))
    return joined


def toggled(start: int, end: int, on: bool, toggles: list[int]) -> list[tuple[int, int]]:
    """Intervals of [start, end] where a switch, first ``on``, flips at each of ``toggles``."""
    out = []
    since = start
    for t in toggles:
        if on:
            out.append((since, t))
        on = not on
        since = t
    if on:
        out.append((since, end))
    return out


def reference(
    mode: Mode,
    user: int | None,
    code: str,
    rule: Rule,
    events: list[PolicyEvent],
) -> Expected:
    hangup = events[-1].t
    answered = any(isinstance(e, Answer) for e in events)

    # The stretches of the call, one per recorded user: [start, user, mode, presses].
    stretches: list[list] = []  # type: ignore[type-arg]
    current_user, current_mode = user, mode
    for e in events:
        if isinstance(e, PartyChange):
            current_user, current_mode = e.user_id, e.mode
        if isinstance(e, Answer) or (isinstance(e, PartyChange) and stretches):
            stretches.append([e.t, current_user, current_mode, []])

    # The SRC's pauses.
    pauses = []
    paused_since = None
    for e in events:
        if isinstance(e, SrcPause) and paused_since is None:
            paused_since = e.t
        if isinstance(e, SrcResume) and paused_since is not None:
            pauses.append((paused_since, e.t))
            paused_since = None
    if paused_since is not None:
        pauses.append((paused_since, hangup))

    # The code presses, each in the stretch it happened in.
    spans = []
    star = None
    seen_answer = False
    stretch = 0
    for e in events:
        if isinstance(e, Answer):
            seen_answer = True
        if isinstance(e, PartyChange):
            star = None
            if seen_answer:
                stretch += 1
        if not (seen_answer and isinstance(e, Digit) and e.side == "user"):
            continue
        if len(code) == 1:  # a single key: each press of it is the code, nothing else is
            if e.digit == code:
                spans.append((e.t, e.t + e.duration_ms))
                stretches[stretch][3].append(e.t)
            continue
        if e.digit == "*":
            star = e
            continue
        if star is not None and e.digit == code[1] and e.t - star.t <= TIMEOUT:
            spans.append((star.t, e.t + e.duration_ms))
            stretches[stretch][3].append(e.t)
        star = None

    if not answered:
        return Expected(False, [], spans, False, [])
    if rule == "blacklist":
        return Expected(False, [], spans, False, [])

    segments: list[tuple[int, int, int | None]] = []
    unsaved_only = True
    for i, (start, who, how, presses) in enumerate(stretches):
        end = stretches[i + 1][0] if i + 1 < len(stretches) else hangup
        if rule == "whitelist" or how in (Mode.ALWAYS, Mode.PLAYBACK):
            recorded = [(start, end)]
        elif how == Mode.NEVER:
            recorded = []
        elif how == Mode.ALWAYS_PAUSE:
            recorded = toggled(start, end, True, presses)
        elif how == Mode.ON_DEMAND_KEEP:
            recorded = toggled(start, end, True, presses[1:]) if presses else []
        else:
            recorded = toggled(start, end, False, presses)
        kept = minus(recorded, pauses)
        segments += [(a, b, who) for a, b in kept]
        if kept and not (how == Mode.PLAYBACK and not presses and rule != "whitelist"):
            unsaved_only = False
    keep = bool(segments)
    users: list[int] = []
    for _, _, who in segments:
        if who is not None and who not in users:
            users.append(who)
    return Expected(keep, segments, spans, keep and unsaved_only, users)


# -- random calls --

modes = st.sampled_from(list(Mode))
users = st.one_of(st.none(), st.integers(1, 4))
keys = st.sampled_from(list("*1*1*1*5#0"))


@st.composite
def calls(draw: st.DrawFn) -> tuple[Mode, int | None, str, Rule, list[PolicyEvent]]:
    code = draw(st.sampled_from(["*1", "*5", "5", "1", "*", "#"]))  # both forms
    t = draw(st.integers(-2000, 2000))
    events: list[PolicyEvent] = []
    count = draw(st.integers(0, 120))
    answer_at = draw(st.one_of(st.none(), st.integers(0, count)))
    for i in range(count + 1):
        t += draw(st.sampled_from([0, 0, 1, 50, 200, 700, 1500, 2999, 3000, 3001, 5000, 20_000]))
        if i == answer_at:
            events.append(Answer(t))
        if i == count:
            break
        kind = draw(st.sampled_from(["user"] * 6 + ["other"] * 3 + ["pause", "resume", "party"]))
        if kind in ("user", "other"):
            key = draw(keys)
            side: Side = "user" if kind == "user" else "other"
            duration = draw(st.integers(0, 200))
            events.append(Digit(t, code[-1] if key == "1" else key, side, duration))
        elif kind == "pause":
            events.append(SrcPause(t))
        elif kind == "resume":
            events.append(SrcResume(t))
        else:
            events.append(PartyChange(t, draw(users), draw(modes)))
    events.append(Hangup(t + draw(st.sampled_from([0, 10, 5000]))))
    rule = draw(st.sampled_from(RULES))
    return draw(modes), draw(users), code, rule, events


@settings(max_examples=400, deadline=None)
@given(calls())
def test_engine_matches_the_reference_model(
    call: tuple[Mode, int | None, str, Rule, list[PolicyEvent]],
) -> None:
    mode, user, code, rule, events = call
    engine = PolicyEngine(
        mode,
        ShortCode.parse(code),
        user_id=user,
        contact_rule=rule,
        code_timeout_ms=TIMEOUT,
    )
    for event in events:
        engine.feed(event)
    got = engine.decision()
    want = reference(mode, user, code, rule, events)
    assert [(s.start_ms, s.end_ms, s.user_id) for s in got.segments] == want.segments
    assert list(got.code_spans) == want.code_spans
    assert got.keep is want.keep
    assert got.unsaved is want.unsaved
    assert got.expires_days == (3 if want.unsaved else None)
    assert list(got.users) == want.users
    assert got.reason
