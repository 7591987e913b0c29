"""SIPREC over TLS with SRTP (SDES), as most SBCs fork recordings (issue 7, section 4).

The SRC is identified by its TLS client certificate (a registered source with
that fingerprint, TLS and SRTP required); a call over TLS with SRTP must be
recorded exactly like a plain one, checked by the tones in the MP3.
"""

from __future__ import annotations

from pathlib import Path

from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from callvault.sources.store import change_source, find_source
from tests.e2e.harness import Recorder, running_recorder
from tests.sip.tls_certs import client_context, self_signed

USER_HZ, OTHER_HZ = 440.0, 1000.0


def _plan(transport: str, srtp: bool, seconds: float = 3.0) -> CallPlan:
    return CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, seconds)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(OTHER_HZ, seconds)),
        duration_s=seconds,
        transport=transport,
        srtp=srtp,
    )


def _require_certificate_tls_srtp(rec: Recorder, fingerprint: str) -> None:
    with rec.app.sessions() as session:
        row = find_source(session, "loopback")
        assert row is not None
        change_source(
            session,
            row,
            {
                "networks": [],
                "fingerprints": [fingerprint],
                "require_tls": True,
                "require_srtp": True,
            },
        )
        session.commit()
    rec.app.reload_directory()


async def test_a_call_over_tls_with_srtp_records_like_a_plain_one(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    server = self_signed(certs, "srs")
    sbc = self_signed(certs, "sbc")
    async with running_recorder(
        tmp_path,
        sip_tls_port=0,
        sip_tls_cert=server.cert,
        sip_tls_key=server.key,
        sip_tls_ca=sbc.cert,
        tls_client_context=client_context(server, sbc),
    ) as rec:
        assert rec.app.endpoint.tls_port
        _require_certificate_tls_srtp(rec, sbc.fingerprint)

        # the same source without TLS, or over TLS with plain RTP, is refused
        assert (await rec.client.place(_plan("udp", srtp=True, seconds=0.5))).status == 403
        plain = await rec.client.place(_plan("tls", srtp=False, seconds=0.5))
        assert plain.status == 488

        result = await rec.client.place(_plan("tls", srtp=True))
        assert result.status == 200 and result.declined == 0
        ((_call_id, recording_id),) = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        assert meta["user_id"] == rec.users["alice"]
        pcm, rate, _ = await rec.audio(recording_id)
        assert 2.5 < pcm.shape[1] / rate < 3.5
        assert sum(e - s for s, e in tone_spans(pcm[0], rate, USER_HZ)) > 2.5
        assert sum(e - s for s, e in tone_spans(pcm[1], rate, OTHER_HZ)) > 2.5
        assert tone_spans(pcm[0], rate, OTHER_HZ) == []
