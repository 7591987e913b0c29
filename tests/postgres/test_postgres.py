"""The same schema and the same recorder on PostgreSQL: nothing is SQLite-only."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from callvault.db.engine import make_engine, migrate
from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from tests.e2e.harness import running_recorder


def test_migrations_run_on_postgres(postgres_url: str) -> None:
    migrate(postgres_url)
    migrate(postgres_url)  # idempotent
    engine = make_engine(postgres_url)
    tables = set(inspect(engine).get_table_names())
    assert {"calls", "recordings", "segments", "tenants", "users", "audit_events"} <= tables
    with engine.connect() as connection:
        version = connection.execute(text("select version_num from alembic_version")).scalar()
    assert version is not None
    engine.dispose()


async def test_a_recorded_call_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.begin() as connection:  # a fresh schema for this test
        connection.execute(text("drop schema public cascade; create schema public"))
    engine.dispose()
    async with running_recorder(tmp_path, database_url=postgres_url) as rec:
        plan = CallPlan(
            caller=Participant("sip:alice@acme.example", "Alice", sine(440.0, 3.0)),
            callee=Participant("sip:+31612345678@pstn.example", "", sine(1000.0, 3.0)),
            duration_s=3.0,
            transport="tcp",
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        pcm, rate, _raw = await rec.audio(recording_id)
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()
    assert calls["items"][0]["recording_ids"] == [recording_id]
    assert meta["user_id"] == rec.users["alice"]
    assert sum(e - s for s, e in tone_spans(pcm[0], rate, 440.0)) > 2.2
    assert sum(e - s for s, e in tone_spans(pcm[1], rate, 1000.0)) > 2.2


async def test_a_call_with_64_kb_metadata_values_is_recorded_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    """Over-long name, AOR and participant id (SPEC 7, "Metadata length") fit the columns.

    Before the bounds, PostgreSQL refused the 25 000-character name for
    ``call_parties.name`` (varchar 200) and the recording was lost.
    """
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("drop schema public cascade; create schema public"))
    engine.dispose()
    name, aor = "N" * 25_000, "sip:" + "7" * 25_000 + "@pstn.example"
    async with running_recorder(tmp_path, database_url=postgres_url) as rec:
        other = Participant(aor, name, sine(1000.0, 2.0), participant_id="p" * 1000)
        plan = CallPlan(
            caller=Participant("sip:alice@acme.example", "Alice", sine(440.0, 2.0)),
            callee=other,
            duration_s=2.0,
            transport="tcp",
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
    assert meta["user_id"] == rec.users["alice"]
    [party] = [p for p in meta["parties"] if p["side"] == "other"]
    assert party["name"] == name[:199] + "…"
    assert party["aor"] is None  # too long to match anyone: dropped, the call kept
    assert len(party["participant_id"]) == 255
