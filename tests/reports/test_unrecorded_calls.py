"""Reports › Calls lists every call callvault saw for the tenant (issue 8 section 5).

A call in which nobody is recorded (the streams are declined: port 0) is
listed with its parties and times, and leaves no audio anywhere: no spool
file, no blob, no recording row. Tried on a live recorder (SIP, RTP, the
finisher and the portal API).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from callvault.db.models import Call, CallParty, Recording
from tests.e2e.harness import running_recorder
from tests.security.test_siprec_trust import audio_on_disk, during, plan


async def test_a_declined_call_is_listed_without_audio(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        seen: dict[str, object] = {}

        async def look(call: object) -> None:
            from callvault.siprec.call import RecordedCall

            assert isinstance(call, RecordedCall)
            seen["declined"] = call.declined
            seen["spool"] = call.spool.directory

        # Carol is not on the recording list: nobody in this call may be recorded
        result = await during(rec, plan("carol", 1.0), look)
        assert result.status == 200 and result.declined == 2 and seen["declined"] is True
        ((call_uuid, recording_id),) = await rec.wait_finished()
        assert recording_id is None
        spool = seen["spool"]
        assert isinstance(spool, Path) and not spool.exists()
        assert audio_on_disk(spool) == 0
        assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]

        page = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()
        [row] = page["items"]
        assert row["id"] == call_uuid and row["recording_ids"] == []
        assert row["audio_url"] is None and row["download_url"] is None
        assert row["from_aor"] == "sip:carol@acme.example"
        assert row["started_at"].endswith("+00:00") and row["audio"] is None
        unrecorded = await rec.http.get(
            f"/api/v1/tenants/{rec.tenant_id}/calls", params={"recorded": "false"}
        )
        assert [c["id"] for c in unrecorded.json()["items"]] == [call_uuid]

        with rec.app.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Recording)) == 0
            [call] = session.scalars(select(Call)).all()
            assert call.tenant_id == rec.tenant_id
            parties = {p.aor: p.user_id for p in session.scalars(select(CallParty))}
            assert parties["sip:carol@acme.example"] == rec.users["carol"]
