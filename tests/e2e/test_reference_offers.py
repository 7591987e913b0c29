"""Real SIPREC offers, captured from deployed recording clients, against a running recorder.

Every body in ``tests/fixtures/siprec/reference`` (Oracle/Acme, Cisco CUBE,
Ribbon/Sonus, OpenSIPS, Avaya SBCE, SEMS, Cisco with ``a=inactive``) is sent
verbatim (line ends made CRLF) as the body of a SIPREC INVITE over TCP. The
recorder must answer 200 with an SDP answer that has one m-line per offered
m-line, each audio line with a port and ``recvonly`` (``inactive`` for the
inactive offer), take the ACK and the BYE, and, since the AORs in these
captures belong to no tenant, finish the call without storing a recording.
"""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path

from callvault.sip.dialog import Dialog
from callvault.sip.sdp import parse_sdp
from tests.e2e.harness import running_recorder

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures/siprec/reference"
MARKER = "---- verbatim content below this line ----"
OFFERS = sorted(REFERENCE.glob("*.txt"))


def load_offer(path: Path) -> tuple[str, bytes]:
    """The boundary and the CRLF body of one reference file."""
    text = path.read_text(encoding="utf-8")
    _head, found, body = text.partition(MARKER)
    assert found, f"{path.name}: no '{MARKER}' line"
    body = body.split("\n", 1)[1] if "\n" in body else ""  # the rest of the marker line
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    boundary = next(line[2:].strip() for line in lines if line.startswith("--"))
    return boundary, "\r\n".join(lines).encode("utf-8")


def offered_media(body: bytes) -> list[str]:
    """The m-lines of the SDP part, read without callvault's parsers."""
    return [line for line in body.decode().split("\r\n") if line.startswith("m=")]


async def test_reference_offers_are_answered_and_finished(tmp_path: Path) -> None:
    assert len(OFFERS) >= 7, [p.name for p in OFFERS]
    async with running_recorder(tmp_path) as rec:
        for path in OFFERS:
            boundary, body = load_offer(path)
            offered = offered_media(body)
            assert offered, path.name
            call_id = f"{uuid.uuid4().hex}@127.0.0.1"
            invite = rec.client._request(
                "INVITE",
                call_id,
                1,
                secrets.token_hex(4),
                None,
                f"sip:srs@{rec.sip[0]}:{rec.sip[1]};transport=tcp",
                "tcp",
                body,
                f"multipart/mixed;boundary={boundary}",
                [("Require", "siprec")],
            )
            response = await rec.endpoint.request(invite, rec.sip, "tcp")
            assert response.code == 200, (path.name, response.code, response.phrase)
            assert response.headers.get("Content-Type") == "application/sdp", path.name
            dialog = Dialog.from_outgoing_invite(invite, response)
            rec.endpoint.send_ack(response, dialog)

            answer = parse_sdp(bytes(response.body))
            assert len(answer.media) == len(offered), (path.name, offered, response.body)
            inactive = "inactive" in path.name
            for line, media in zip(offered, answer.media, strict=True):
                assert media.media == line[2:].split()[0], (path.name, line)
                if media.media != "audio":
                    continue
                assert media.port != 0, (path.name, line)
                assert media.direction == ("inactive" if inactive else "recvonly"), path.name
                # only what the offer had and we can record: never GSM or CN
                offered_pts = {int(pt) for pt in line.split()[3:]}
                assert set(media.formats) <= offered_pts, (path.name, line)
                assert {0, 8} & set(media.formats), (path.name, media.formats)
            labels = re.findall(r"^a=label:(\S+)", body.decode(), re.MULTILINE)
            assert [m.label for m in answer.media] == labels, path.name

            bye = await rec.endpoint.request(dialog.create_request("BYE"), rec.sip, "tcp")
            assert bye.code == 200, (path.name, bye.code)
            [(call_uuid, recording_id)] = await rec.wait_finished(timeout=60)
            assert recording_id is None, path.name  # no party belongs to a tenant
            assert call_uuid
        assert rec.app.calls.calls == {}
