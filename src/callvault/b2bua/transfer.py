"""Transfers the B2BUA carries out itself (RFC 3515 REFER, RFC 5589 blind transfer).

A REFER from a leg whose Refer-To names a number the operator routes (and
that replaces no other dialog) is done here: we call the target, and when it
answers it takes the place of the party who asked (that leg's dialog is
replaced; the relay's port on that side now talks to the new party), the
asking party gets NOTIFYs with the progress (``message/sipfrag``) and then a
BYE. The other party stays in the same dialog and hears no change of codec.
The recording goes on as one conversation with a change of parties in its
timeline. A failed transfer leaves the call and its recording as they were.
Attended transfers (Refer-To with Replaces) and targets without a route are
passed to the other leg, for the PBX to carry out.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from sipmessage import Address, Request

from callvault.b2bua.legs import SDP, Leg, Side, aor_of, other, sdp_of
from callvault.b2bua.routes import Route
from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import IncomingRequest

if TYPE_CHECKING:
    from callvault.b2bua.call import BridgedCall

log = logging.getLogger(__name__)


def refer_here(call: BridgedCall, request: IncomingRequest, side: Side) -> bool:
    """REFER from ``side``: carry it out when a route leads to its target and it
    replaces no other dialog (attended transfers go to the PBX: passed on)."""
    refer_to = request.message.headers.get("Refer-To")
    if not refer_to:
        request.respond(400, "REFER without Refer-To")
        return True
    if "replaces=" in refer_to.lower():
        return False  # names a dialog only the PBX knows
    try:
        target = Address.parse(refer_to)
    except ValueError:
        return False  # not ours to judge: the other leg answers it
    user = target.uri.user or ""
    number = call.ctx.calls.directory().match(f"{user}@{target.uri.host}").number
    route = call.ctx.routes().lookup(call.source.id, number, user)
    if route is None:
        return False
    request.respond(202, "Accepted")
    call.spawn(transfer(call, side, target, route))
    return True


async def transfer(call: BridgedCall, side: Side, target: Address, route: Route) -> None:
    """Replace the party on ``side`` (who asked) with ``target``; the other stays."""
    stays = call.leg(other(side))
    leaving = call.leg(side)
    assert leaving.dialog is not None
    await notify(call, leaving, "SIP/2.0 100 Trying", active=True)
    if stays.sdp is None:
        await notify(call, leaving, "SIP/2.0 488 Not Acceptable Here", active=False)
        return
    call_id = secrets.token_hex(12) + "@callvault"
    tag = secrets.token_hex(8)
    request = Request(method="INVITE", uri=target.uri)
    headers = request.headers
    headers.add("From", f"<sip:{stays.aor or 'anonymous@invalid'}>;tag={tag}")
    headers.add("To", f"<{target.uri}>")
    headers.add("Call-ID", call_id)
    headers.add("CSeq", "1 INVITE")
    headers.add("Contact", call.ctx.contact)
    headers.add("Content-Type", SDP)
    # the new party talks to the relay's port on the leaving party's side
    request.body = call.offer_for(side, stays.sdp, stays.audio_index)
    remote = (route.target.host, route.target.port)
    try:
        response = await call.ctx.endpoint.request(request, remote, route.target.transport)
    except (TimeoutError, OSError, ConnectionError):
        await notify(call, leaving, "SIP/2.0 408 Request Timeout", active=False)
        return
    if not 200 <= response.code < 300:
        # a failed transfer: the call goes on as before, and so does its recording
        await notify(call, leaving, f"SIP/2.0 {response.code} {response.phrase}", active=False)
        return
    dialog = Dialog.from_outgoing_invite(request, response)
    call.ctx.endpoint.send_ack(response, dialog)
    answer = sdp_of(response)
    await notify(call, leaving, "SIP/2.0 200 OK", active=False)
    call.retire(leaving)
    newcomer = Leg(side, route.target.transport, remote, None)
    newcomer.dialog = dialog
    aor, name = aor_of(response.headers.get("P-Asserted-Identity") or response.headers.get("To"))
    newcomer.generation = leaving.generation
    call.leg_call_ids[side] = call_id
    if side == "a":
        call.a = newcomer
    else:
        call.b = newcomer
    call.ctx.on_legs_changed(call)
    call.new_party(side, aor, name)
    if answer is not None:
        call.learn_sdp(side, answer)
    await call.parties_changed(side)


async def notify(call: BridgedCall, leg: Leg, sipfrag: str, *, active: bool) -> None:
    if leg.dialog is None or call.ended:
        return
    state = "active;expires=60" if active else "terminated;reason=noresource"
    notify = leg.dialog.create_request(
        "NOTIFY",
        f"{sipfrag}\r\n".encode(),
        "message/sipfrag;version=2.0",
        headers=[("Event", "refer"), ("Subscription-State", state)],
    )
    try:
        await call.ctx.endpoint.request(notify, leg.remote, leg.transport)
    except (TimeoutError, OSError, ConnectionError) as exc:
        log.info("NOTIFY not answered: %s", exc)
