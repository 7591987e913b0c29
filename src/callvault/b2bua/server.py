"""The B2BUA as a SIP request handler: which requests are its, and to which call.

A request is the B2BUA's when its Call-ID is one of a bridged call's legs, or
when it is a new INVITE that is not SIPREC (no ``Require: siprec``, no
metadata) from a registered source of kind ``pbx`` or ``trunk``. Everything
else goes to the SIPREC server. A new INVITE is routed by the operator's
call routes (``routes.py``): the source's route with the longest prefix of
the Request-URI's number (or user part) names the other leg. Source limits
(calls at once) apply as for SIPREC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from callvault.b2bua.call import BridgeContext, BridgedCall, ChallengedLeg
from callvault.b2bua.coaching import CoachingDesk, coaching_extension
from callvault.b2bua.legs import Side
from callvault.metrics import Metrics
from callvault.sip.endpoint import IncomingRequest
from callvault.siprec.offer import is_siprec_request
from callvault.sources.registry import RecordingSource

log = logging.getLogger(__name__)

MAX_CALL_ID = 255  # calls.sip_call_id
CHALLENGE_KEPT_S = 32.0  # 64*T1: how long a retry with credentials may take
MAX_CHALLENGES = 10_000
SHUTDOWN_BYE_S = 1.0  # how long shutdown waits for the BYEs to be answered


class B2buaServer:
    def __init__(self, ctx: BridgeContext, metrics: Metrics | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics or Metrics()
        self.legs: dict[str, tuple[BridgedCall, Side]] = {}  # by each leg's Call-ID
        self.calls: set[BridgedCall] = set()
        self.retired: dict[str, BridgedCall] = {}  # transferors' legs not yet ended
        # leg a's (Call-ID, From tag) -> leg b of a call challenged for credentials, and when
        self.challenged: dict[tuple[str, str], tuple[ChallengedLeg, float]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        # supervisors coaching calls (*98*<ext>, LiveCenter), by their dialog's Call-ID
        self.coaching = CoachingDesk(ctx, lambda: self.calls, self._spawn)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _source(self, request: IncomingRequest) -> RecordingSource | None:
        return self.ctx.calls.sources().identify(request.remote[0], request.tls_fingerprint)

    def owns(self, request: IncomingRequest) -> bool:
        """Whether ``request`` is for the B2BUA (else it is SIPREC's)."""
        message = request.message
        call_id = message.call_id or ""
        if call_id in self.legs or call_id in self.retired or self.coaching.owns(call_id):
            return True
        if message.method != "INVITE" or message.to_address.parameters.get("tag"):
            return False
        source = self._source(request)
        return source is not None and source.is_b2bua_leg and not is_siprec_request(message)

    def handle(self, request: IncomingRequest) -> None:
        message = request.message
        if self.coaching.owns(message.call_id or ""):
            if message.method == "INVITE" and not message.to_address.parameters.get("tag"):
                request.respond(482, "Loop Detected")  # the same coaching request again
                return
            self.coaching.handle(request)
            return
        retired = self.retired.get(message.call_id or "")
        if retired is not None:
            retired.retired_request(request)
            return
        found = self.legs.get(message.call_id or "")
        if found is not None:
            call, side = found
            if message.method == "ACK":
                return
            if message.method == "INVITE" and not message.to_address.parameters.get("tag"):
                # the INVITE again, before our answer (a retransmission is the
                # transaction's): a second INVITE with this Call-ID is not a new call
                request.respond(482, "Loop Detected")
                return
            if not call.matches(request, side):
                request.respond(481, "Call/Transaction Does Not Exist")
                return
            call.in_dialog(request, side)
            return
        self._new_call(request)

    def _new_call(self, request: IncomingRequest) -> None:
        message = request.message
        source = self._source(request)
        if source is None:  # the registry changed since the endpoint's screen
            request.respond(403, "Forbidden")
            return
        if len(message.call_id or "") > MAX_CALL_ID:
            request.respond(400, f"Call-ID longer than {MAX_CALL_ID} characters")
            return
        if (message.headers.get("Max-Forwards") or "70").strip() == "0":
            request.respond(483, "Too Many Hops")  # a route that leads back to us
            return
        user = message.uri.user or ""
        extension = coaching_extension(user)
        if extension is not None:  # *98*<ext>: a supervisor, not a call to route (SPEC 7)
            self.coaching.invite(request, source, extension)
            return
        number = self.ctx.calls.directory().match(f"{user}@{message.uri.host}").number
        route = self.ctx.routes().lookup(source.id, number, user)
        if route is None:
            why = f"no call route from source {source.name} for {user or message.uri.host}"
            log.info("bridged INVITE %s refused: %s", message.call_id, why)
            request.respond(404, "No Route", headers=[("Warning", f'399 callvault "{why}"')])
            return
        usage = self.ctx.calls.usages.usage(source)
        if not usage.try_open_call():
            self.metrics.sip_requests_refused_limit += 1
            request.respond(
                503,
                "Source Over Its Limit",
                headers=[
                    ("Retry-After", "30"),
                    ("Warning", f'399 callvault "{usage.calls} calls open"'),
                ],
            )
            return
        call = BridgedCall(self.ctx, request, source, route, self._retry_of(request))
        call.recording.on_release = usage.release_call
        self.calls.add(call)
        self._index(call)
        call.spawn(call.start())

    def _key(self, request: IncomingRequest) -> tuple[str, str]:
        message = request.message
        return (message.call_id or "", message.from_address.parameters.get("tag") or "")

    def _retry_of(self, request: IncomingRequest) -> ChallengedLeg | None:
        now = self.ctx.calls.loop.time()
        for key in [k for k, (_, at) in self.challenged.items() if now - at > CHALLENGE_KEPT_S]:
            del self.challenged[key]
        found = self.challenged.pop(self._key(request), None)
        return found[0] if found else None

    def challenged_leg(self, call: BridgedCall, leg: ChallengedLeg) -> None:
        if len(self.challenged) < MAX_CHALLENGES:
            self.challenged[self._key(call.invite)] = (leg, self.ctx.calls.loop.time())

    def _index(self, call: BridgedCall) -> None:
        for side, call_id in call.leg_call_ids.items():
            self.legs[call_id] = (call, "a" if side == "a" else "b")
        for call_id in [k for k, c in self.retired.items() if c is call]:
            del self.retired[call_id]
        for call_id in call.retired:
            self.retired[call_id] = call

    # -- BridgeContext callbacks -------------------------------------------------------
    def closed(self, call: BridgedCall) -> None:
        self.calls.discard(call)
        for call_id in [k for k, (c, _) in self.legs.items() if c is call]:
            del self.legs[call_id]
        for call_id in [k for k, c in self.retired.items() if c is call]:
            del self.retired[call_id]

    def legs_changed(self, call: BridgedCall) -> None:
        for call_id in [k for k, (c, _) in self.legs.items() if c is call]:
            del self.legs[call_id]
        self._index(call)

    async def close(self) -> None:
        """Shutdown: BYE every bridged call's legs, give the BYEs a moment, stop."""
        tasks: set[asyncio.Task[None]] = set(self.tasks)
        self.coaching.close()  # the supervisors' BYEs
        tasks |= self.tasks
        for call in list(self.calls):
            tasks |= call.tasks
            call.hang_up("shutdown")
            tasks |= call.tasks
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_BYE_S)
        for task in tasks:
            task.cancel()
