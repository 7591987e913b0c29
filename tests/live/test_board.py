"""LiveCenter's board with real ``RecordedCall`` objects: state, tenants, presences, subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callvault.live.board import LiveBoard, LiveCallView, Removed, UnknownCall
from callvault.media.ports import RtpPortPool
from callvault.policy.live import RecordingSlot
from callvault.policy.modes import Mode, ShortCode
from callvault.recording.journal import Party, PolicySnapshot, StreamLayout
from callvault.siprec.call import ActiveStream, CallContext, RecordedCall
from callvault.tenants.directory import Directory

NOON = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make_call(
    loop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    board: LiveBoard,
    *,
    tenants: set[int],
    mode: Mode = Mode.ALWAYS,
    user_id: int = 7,
    tenant_of_user: int = 1,
) -> RecordedCall:
    ctx = CallContext(
        loop=loop,
        spool_root=tmp_path,
        media_address="127.0.0.1",
        ports=RtpPortPool(40000, 40100),
        directory=Directory,
        on_ended=lambda call: None,
        on_changed=board.changed,
    )
    call = RecordedCall(ctx, f"sip-{len(board._calls)}")
    call.parties = [
        Party("alice", "sip:alice@a.example", "Alice", "+31201234567", user_id, "user"),
        Party("bob", "sip:bob@b.example", "Bob", "+4930123456", None, "other"),
    ]
    call._tenants = set(tenants)
    slot = RecordingSlot(
        f"{tenant_of_user}.0", tenant_of_user, user_id, "alice", mode, ShortCode("1")
    )
    call.slots = [(slot, PolicySnapshot())]
    call.live.set_slots(0, [slot])
    ctx.on_changed(call)  # as the call does once its metadata is matched
    return call


def press(call: RecordedCall, t: int) -> None:
    call.live.key(t, "*", "alice")
    call.live.key(t + 300, "1", "alice")


def test_the_state_follows_answer_code_and_hangup(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    board = LiveBoard(clock=lambda: NOON)
    call = make_call(loop, tmp_path, board, tenants={1}, mode=Mode.ALWAYS_PAUSE)
    assert [v.state for v in board.views(1)] == ["ringing"]
    call.answered()
    (view,) = board.views(1)
    assert view.state == "recording"
    assert view.answered_at is not None and view.answered_at >= view.started_at
    assert view.modes == {7: "always_pause"}
    press(call, 5000)
    assert board.views(1)[0].state == "paused"
    press(call, 9000)
    assert board.views(1)[0].state == "recording"
    call.end("bye")
    assert board.views(1) == []
    assert board.find(1, call.uuid) is None


def test_on_demand_user_is_not_recording_until_the_code_or_record_now(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    board = LiveBoard()
    call = make_call(loop, tmp_path, board, tenants={1}, mode=Mode.ON_DEMAND_USER)
    call.answered()
    assert board.views(1)[0].state == "not-recording"
    call.live.record_now(call.now_ms(), True)
    assert board.views(1)[0].state == "recording"
    call.live.record_now(call.now_ms(), False)
    assert board.views(1)[0].state == "not-recording"
    call.end("bye")


def test_an_src_pause_of_every_stream_shows_paused(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    board = LiveBoard()
    call = make_call(loop, tmp_path, board, tenants={1})
    call.answered()
    layout = StreamLayout(
        index=0, label="1", codecs={}, channel="mix", participant_id=None, active=False
    )
    call.streams[0] = ActiveStream(layout, 0, None)  # type: ignore[arg-type]
    assert board.views(1)[0].state == "paused"
    call.streams.clear()
    call.end("bye")


def test_a_call_shows_to_each_of_its_tenants_and_to_no_other(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    board = LiveBoard()
    call = make_call(loop, tmp_path, board, tenants={1, 2})
    assert [v.id for v in board.views(1)] == [call.uuid]
    assert [v.id for v in board.views(2)] == [call.uuid]
    assert board.views(3) == []
    assert board.find(3, call.uuid) is None
    assert board.find(2, call.uuid) is call
    # the modes of tenant 1's user are tenant 1's business
    assert board.views(2)[0].modes == {}
    assert board.views(1)[0].modes == {7: "always"}
    call.end("bye")


def test_presences_show_on_the_call_and_go_when_left(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    board = LiveBoard(clock=lambda: NOON)
    call = make_call(loop, tmp_path, board, tenants={1, 2})
    presence = board.join(call.uuid, user_id=9, name="Lea", kind="listen", tenant_id=1)
    assert presence.since == NOON
    assert [p.name for p in board.views(1)[0].presences] == ["Lea"]
    assert board.views(2)[0].presences == ()  # another tenant's supervisor is not shown
    board.leave(presence)
    board.leave(presence)
    assert board.views(1)[0].presences == ()
    with pytest.raises(UnknownCall):
        board.join("nope", user_id=9, name="Lea", kind="coach")
    call.end("bye")


def test_subscribers_get_changes_of_their_tenant_only(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    board = LiveBoard()

    async def scenario() -> None:
        mine = board.subscribe(1)
        theirs = board.subscribe(2)
        assert mine.snapshot() == []
        call = make_call(loop, tmp_path, board, tenants={1})
        call.answered()
        call.end("bye")
        events = []
        while (event := await mine.get(timeout=0.01)) is not None:
            events.append(event)
        states = [e.state for e in events if isinstance(e, LiveCallView)]
        assert states[0] == "ringing" and states[-1] == "recording"
        assert events[-1] == Removed(call.uuid)
        assert await theirs.get(timeout=0.01) is None
        mine.close()
        theirs.close()
        assert board.subscribers(1) == 0

    loop.run_until_complete(scenario())


def test_a_slow_subscriber_is_dropped_to_a_fresh_snapshot(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    board = LiveBoard()

    async def scenario() -> None:
        slow = board.subscribe(1, limit=4)
        ended = make_call(loop, tmp_path, board, tenants={1})
        assert isinstance(await slow.get(timeout=1), LiveCallView)  # it knows this call
        running = make_call(loop, tmp_path, board, tenants={1})
        for _ in range(10):  # the call never waits for the subscriber
            running.ctx.on_changed(running)
        ended.end("bye")
        assert slow.dropped >= 1
        events = []
        while (event := await slow.get(timeout=0.01)) is not None:
            events.append(event)
        assert events[0] == Removed(ended.uuid)
        assert [e.id for e in events[1:] if isinstance(e, LiveCallView)] == [running.uuid]
        running.end("bye")
        slow.close()

    loop.run_until_complete(scenario())
