"""The Via rules for a received request and its responses (RFC 3261 18.2.1, 18.2.2; RFC 3581).

Pure functions, shared by the sans-IO core (``core.py``) and the transports.
"""

from __future__ import annotations

import re

from sipmessage import Request

from callvault.sip.message import top_via

__all__ = ["HostPort", "response_address", "stamp_via"]

HostPort = tuple[str, int]

_RPORT_EMPTY = re.compile(r";\s*rport\s*(?=;|$)", re.IGNORECASE)


def stamp_via(request: Request, source: HostPort) -> None:
    """Add ``received`` / fill ``rport`` in the top Via (18.2.1, RFC 3581 section 4)."""
    vias = request.headers.getlist("Via")
    via = top_via(request)
    raw = vias[0]
    wants_rport = "rport" in via.parameters and not via.parameters.get("rport")
    if wants_rport:
        raw = _RPORT_EMPTY.sub(f";rport={source[1]}", raw, count=1)
    needs_received = wants_rport or via.host.strip("[]") != source[0]
    if needs_received and "received" not in via.parameters:
        raw += f";received={source[0]}"
    if raw != vias[0]:
        request.headers.setlist("Via", [raw, *vias[1:]])


def response_address(request: Request) -> HostPort:
    """Where UDP responses to a (stamped) request go (18.2.2, RFC 3581 section 4)."""
    via = top_via(request)
    host = via.parameters.get("received") or via.host.strip("[]")
    rport = via.parameters.get("rport")
    port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
    return (host, port)
