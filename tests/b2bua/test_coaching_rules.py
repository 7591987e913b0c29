"""Silent coaching's rules without phones (b2bua/coaching.py; SPEC 7).

Who may coach (the operator's enablement, role, permission, active, a
listener's teams), the ``*98*<ext>`` code as phones send it, the refusals'
SIP answers and Warning text, the SDP answered to the supervisor, and the
manual's key table (digits switch the bridge's mode, other keys nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from callvault.b2bua.coaching import (
    MODE_BY_DIGIT,
    CoachingRefused,
    CoachingSession,
    Target,
    check_supervisor,
    coaching_extension,
    may_coach_user,
    supervisor_sdp,
    warning,
)
from callvault.errors import ErrorId
from callvault.media.codec import Codec
from callvault.media.mixer import CoachMode
from callvault.sip.sdp import parse_sdp
from callvault.tenants.directory import Directory, KnownUser, TenantPolicy

T = 7


def user(uid: int, role: str = "listener", *, can_coach: bool = True, **kw: Any) -> KnownUser:
    return KnownUser(uid, T, f"U{uid}", False, "always", role=role, can_coach=can_coach, **kw)


def directory(*, coaching: bool = True, led: dict[int, frozenset[int]] | None = None) -> Directory:
    d = Directory()
    d.policies[T] = TenantPolicy(active=True, coaching_enabled=coaching)
    d.led = led or {}
    return d


@pytest.mark.parametrize(
    ("user_part", "extension"),
    [
        ("*98*201", "201"),
        ("%2A98%2A201", "201"),
        ("%2a98%2a201", "201"),
        ("*98*", ""),  # no extension: refused as "no such extension"
        ('*98*2"01', ""),
        ("201", None),
        ("*981", None),
        ("+31201234501", None),
    ],
)
def test_the_code_as_phones_send_it(user_part: str, extension: str | None) -> None:
    assert coaching_extension(user_part) == extension


def refused(fn: Callable[[], object]) -> CoachingRefused:
    with pytest.raises(CoachingRefused) as info:
        fn()
    return info.value


def test_a_listener_with_the_permission_in_an_enabled_tenant_may() -> None:
    check_supervisor(directory(), T, user(1))
    check_supervisor(directory(), T, user(1, "admin"))


def test_each_refusal_names_its_reason() -> None:
    off = refused(lambda: check_supervisor(directory(coaching=False), T, user(1)))
    assert off.error is ErrorId.COACHING_NOT_ENABLED and off.sip_status == 403
    assert off.why == "coaching is not enabled for the tenant"
    no_permission = refused(lambda: check_supervisor(directory(), T, user(1, can_coach=False)))
    assert no_permission.error is ErrorId.COACHING_NOT_PERMITTED
    assert "no coaching permission" in no_permission.why
    plain_user = refused(lambda: check_supervisor(directory(), T, user(1, "user")))
    assert "role user may not coach" in plain_user.why
    inactive = refused(lambda: check_supervisor(directory(), T, user(1, active=False)))
    assert "inactive" in inactive.why
    busy = CoachingRefused(ErrorId.COACHING_BUSY, "the call is already being coached")
    assert (busy.sip_status, busy.sip_reason) == (486, "Busy Here")


def test_a_listener_coaches_only_the_members_of_the_teams_they_lead() -> None:
    d = directory(led={1: frozenset({2})})
    assert may_coach_user(d, user(1), user(2, "user"))
    assert not may_coach_user(d, user(1), user(3, "user"))
    assert may_coach_user(d, user(9, "admin"), user(3, "user"))
    assert not may_coach_user(d, user(9, "admin"), user(9, "admin"))  # not oneself
    other_tenant = KnownUser(4, T + 1, "X", False, "always")
    assert not may_coach_user(d, user(9, "admin"), other_tenant)


def test_the_warning_is_one_quoted_string() -> None:
    name, value = warning('no such extension 2"01\r\n')
    assert name == "Warning"
    assert value == '399 callvault "no such extension 2?01??"'


def test_the_answer_to_the_supervisor_keeps_the_offer_s_lines() -> None:
    body = supervisor_sdp(
        "127.0.0.1",
        40000,
        {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)},
        session=5,
        version=1,
        declined=[("video", "RTP/AVP", ["96"])],
        audio_at=0,
    )
    sdp = parse_sdp(body)
    assert [m.media for m in sdp.media] == ["audio", "video"]
    audio, video = sdp.media
    assert (audio.port, audio.formats, audio.direction) == (40000, [0, 101], "sendrecv")
    assert audio.rtpmap[101].name == "telephone-event"
    assert video.port == 0


class FakeMedia:
    def __init__(self) -> None:
        self.modes: list[CoachMode] = []
        self.on_digit: Callable[[str], None] | None = None

    def set_mode(self, mode: CoachMode) -> None:
        self.modes.append(mode)


class FakeDesk:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def audit(self, _t: Any, _actor: str, action: str, _target: Any, details: Any) -> None:
        self.rows.append((action, details))


class FakeCall:
    class recording:
        uuid = "c0ffee"


def test_the_manual_s_keys_switch_the_mode_and_nothing_else() -> None:
    desk, media = FakeDesk(), FakeMedia()
    target = Target(FakeCall(), user(2, "user"), "a")  # type: ignore[arg-type]
    session = CoachingSession(
        desk,  # type: ignore[arg-type]
        target,
        user(1),
        via="code",
        remote=("127.0.0.1", 5060),
        transport="udp",
    )
    session.media = media  # type: ignore[assignment]
    for key in "1#2*3390":
        session.digit(key)
    assert media.modes == ["customer", "whisper", "conference", "silent"]
    assert [d["mode"] for a, d in desk.rows if a == "coach.mode"] == media.modes
    assert MODE_BY_DIGIT == {"0": "silent", "1": "customer", "2": "whisper", "3": "conference"}
