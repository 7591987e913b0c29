"""Replaying a call's journal through the policy engine at hang-up.

A SIPREC recorder captures the whole call anyway, so the policy (SPEC
section 3) is applied when the call is finished: the journal's answer, SRC
pauses and changes of the recorded user, plus every key press of either side
— RFC 4733 events and SIP INFO from the journal, in-band tones found in the
decoded audio — become ``PolicyEngine`` events; its ``Decision`` says which
stretches are kept and where the short code's tones are to be cut out.

A key seen twice (RFC 4733 and in-band, or INFO and RFC 4733) counts once:
keys of the same side and value starting within ``SAME_KEY_MS`` are one (the
live policy uses the same window). This matters for a single-key short code
(SPEC section 3: every press of the key toggles): a key counted twice would
toggle the recording straight back. The code's cut spans come from the
engine: ``*`` to the digit, or the single key's own press.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from callvault.policy.engine import (
    Answer,
    Decision,
    Digit,
    Hangup,
    PartyChange,
    PolicyEngine,
    PolicyEvent,
    SrcPause,
    SrcResume,
)
from callvault.policy.live import SAME_KEY_MS
from callvault.policy.modes import Mode, ShortCode
from callvault.recording.journal import Dtmf, Party, PolicySnapshot, Side
from callvault.tenants.numbers import split_aor


@dataclass(frozen=True)
class KeyPress:
    t: int
    digit: str
    side: Side
    duration_ms: int
    source: str
    stream: int | None


@dataclass(frozen=True)
class PolicyOutcome:
    """The decision as the recorder and the database need it (picklable)."""

    keep: bool
    reason: str
    segments: tuple[tuple[int, int], ...]
    code_spans: tuple[tuple[int, int], ...]
    unsaved: bool
    expires_days: int | None
    mode: str
    users: tuple[int, ...]
    keys: tuple[KeyPress, ...]

    @classmethod
    def from_decision(
        cls, decision: Decision, mode: str, keys: Iterable[KeyPress]
    ) -> PolicyOutcome:
        merged: list[tuple[int, int]] = []
        for seg in decision.segments:
            if merged and seg.start_ms <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], seg.end_ms))
            elif seg.end_ms > seg.start_ms:
                merged.append((seg.start_ms, seg.end_ms))
        return cls(
            keep=decision.keep,
            reason=decision.reason,
            segments=tuple(merged),
            code_spans=decision.code_spans,
            unsaved=decision.unsaved,
            expires_days=decision.expires_days,
            mode=mode,
            users=decision.users,
            keys=tuple(keys),
        )


def merge_keys(presses: Iterable[KeyPress]) -> list[KeyPress]:
    """One press per real key: duplicates across sources are dropped."""
    kept: list[KeyPress] = []
    for press in sorted(presses, key=lambda p: (p.t, p.source)):
        if any(
            k.digit == press.digit and k.side == press.side and abs(k.t - press.t) <= SAME_KEY_MS
            for k in kept[-4:]
        ):
            continue
        kept.append(press)
    return kept


def contact_rule(
    policy: PolicySnapshot, user_id: int, parties: Iterable[Party]
) -> Literal["blacklist", "whitelist"] | None:
    lists = policy.contacts_of(user_id)
    if not lists:
        return None
    others: set[str] = set()
    for party in parties:
        if party.user_id == user_id:
            continue
        if party.number:
            others.add(party.number)
        if party.aor:
            user, host = split_aor(party.aor)
            others.add(f"{user}@{host}")
            if user.startswith("+"):
                others.add(user)
    if others & set(lists.get("blacklist", [])):
        return "blacklist"
    if others & set(lists.get("whitelist", [])):
        return "whitelist"
    return None


def decide(
    *,
    policy: PolicySnapshot,
    users: list[tuple[int, int]],
    parties: Sequence[Party],
    answered_ms: int | None,
    end_ms: int,
    src_pauses: list[tuple[int, int]],
    keys: list[KeyPress],
    forced: Sequence[tuple[int, int]] = (),
) -> PolicyOutcome:
    """Run the engine over one call. ``users``: (t, recorded user id) changes, first one first.

    ``forced``: LiveCenter's record-now windows; they are kept whatever the mode
    (outside SRC pauses), except for a user on *never* or a blacklisted contact."""
    def mode_of(user_id: int) -> Mode:
        try:
            return Mode(policy.mode_of(user_id) or Mode.NEVER.value)
        except ValueError:
            return Mode.NEVER

    first_user = users[0][1]
    code = ShortCode.parse(policy.short_code)
    engine = PolicyEngine(
        mode_of(first_user),
        code,
        user_id=first_user,
        contact_rule=contact_rule(policy, first_user, parties),
    )
    events: list[tuple[int, int, PolicyEvent]] = []  # (t, order, event): stable at equal t
    if answered_ms is not None:
        events.append((answered_ms, 0, Answer(answered_ms)))
    for t, user_id in users[1:]:
        events.append((t, 1, PartyChange(t, user_id, mode_of(user_id))))
    for start, stop in src_pauses:
        events.append((start, 2, SrcPause(start)))
        if stop < end_ms:
            events.append((stop, 3, SrcResume(stop)))
    for key in keys:
        events.append((key.t, 4, Digit(key.t, key.digit, key.side, key.duration_ms)))
    last = 0
    for t, _order, event in sorted(events, key=lambda item: (item[0], item[1])):
        if t > end_ms:
            continue
        engine.feed(event)
        last = max(last, t)
    engine.feed(Hangup(max(end_ms, last)))
    outcome = PolicyOutcome.from_decision(engine.decision(), mode_of(first_user).value, keys)
    if forced and engine.contact_rule != "blacklist" and mode_of(first_user) is not Mode.NEVER:
        outcome = _with_record_now(outcome, forced, answered_ms, end_ms, src_pauses, first_user)
    return outcome


def _with_record_now(
    outcome: PolicyOutcome,
    forced: Sequence[tuple[int, int]],
    answered_ms: int | None,
    end_ms: int,
    src_pauses: Sequence[tuple[int, int]],
    user_id: int,
) -> PolicyOutcome:
    """The decision plus LiveCenter's record-now windows: an explicit save."""
    if answered_ms is None:
        return outcome
    spans = [*outcome.segments]
    for start, stop in forced:
        start, stop = max(start, answered_ms), min(stop, end_ms)
        cursor = start
        for p_start, p_stop in sorted(src_pauses):
            if p_stop <= cursor or p_start >= stop:
                continue
            if p_start > cursor:
                spans.append((cursor, p_start))
            cursor = max(cursor, p_stop)
        if cursor < stop:
            spans.append((cursor, stop))
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    if merged == list(outcome.segments):
        return outcome
    return replace(
        outcome,
        keep=bool(merged),
        reason=f"{outcome.reason}; recorded from LiveCenter",
        segments=tuple(merged),
        unsaved=False,
        expires_days=None,
        users=outcome.users or (user_id,),
    )


def side_at(channels: Sequence[tuple[int, str]], t: int) -> Side:
    """Which side a stream carried at ``t``: left is the user's; a mixed stream counts
    as the user's (its keys cannot be told apart, and the user is the one who dials)."""
    current = channels[0][1] if channels else "mix"
    for since, channel in channels:
        if since <= t:
            current = channel
    return "other" if current == "right" else "user"


def journal_keys(
    dtmf: Sequence[Dtmf],
    side_of_stream: Callable[[int, int], Side],
    *,
    side_of_participant: Callable[[str, int], Side] | None = None,
    unattributed: Side | None = None,
) -> list[KeyPress]:
    """The journal's key presses with the side they count for.

    A key naming its ``participant_id`` is that participant's; one naming a
    stream is its sender's; one naming neither (SIP INFO) takes its journalled
    ``side``, or ``unattributed`` when given: with several recorded users in the
    call nobody can tell whose keypad it was, so it counts for one recording only.
    """
    presses = []
    for key in dtmf:
        stream, t = key.stream, key.t
        side: Side = "user" if stream is None else side_of_stream(stream, t)
        if key.participant_id is not None and side_of_participant is not None:
            side = side_of_participant(key.participant_id, t)
        elif key.side is not None:
            side = key.side
            if stream is None and unattributed is not None:
                side = unattributed
        elif stream is None and unattributed is not None:
            side = unattributed
        presses.append(KeyPress(t, key.digit, side, key.duration_ms, key.source, stream))
    return presses
