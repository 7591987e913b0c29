"""The two legs of a bridged call and what passes between them (RFC 3261, RFC 7092).

A leg is one dialog: ``a`` with the party whose INVITE came in (we are its
UAS), ``b`` with the party we called for it (we are its UAC). Requests and
answers cross from one leg to the other with the headers that mean the same
on both sides; everything that names a hop (Via, Route, Contact, tags,
Call-ID, CSeq) is made anew for each leg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sipmessage import Address, Request, Response

from callvault.sip.dialog import Dialog
from callvault.sip.message import display_name
from callvault.sip.sdp import SessionDescription, parse_sdp

Side = Literal["a", "b"]
SDP = "application/sdp"


def other(side: Side) -> Side:
    return "b" if side == "a" else "a"


# Headers that keep their meaning from one leg to the other (RFC 7092 section 4:
# a B2BUA that is transparent to the end points' features).
REQUEST_HEADERS = (
    "Session-Expires",
    "Min-SE",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Privacy",
    "Remote-Party-ID",
    "Authorization",
    "Proxy-Authorization",
    "Subject",
    "Alert-Info",
    "Call-Info",
    "Diversion",
    "History-Info",
    "Accept",
    "Allow",
    "Event",
    "Subscription-State",
    "Refer-To",
    "Referred-By",
    "Replaces",
    "Info-Package",
    "Recv-Info",
    "Reason",
    "Priority",
    "Organization",
    "User-to-User",
)
RESPONSE_HEADERS = (
    "Session-Expires",
    "Min-SE",
    "Require",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Retry-After",
    "Warning",
    "Unsupported",
    "Accept",
    "Allow",
    "P-Asserted-Identity",
    "Remote-Party-ID",
    "Reason",
    "Call-Info",
)
# 100rel needs PRACK between the legs, which we do not relay: the offer to leg b
# leaves it out, so no one requires it of us.
_WITHOUT_100REL = ("Supported",)


def aor_of(value: str | None) -> tuple[str | None, str | None]:
    """(user@host, display name) of a From/To/P-Asserted-Identity value."""
    if not value:
        return None, None
    try:
        address = Address.parse(value)
    except ValueError:
        return None, None
    uri = address.uri
    scheme = uri.scheme or "sip"
    aor = f"{scheme}:{uri.user}@{uri.host}" if uri.user else f"{scheme}:{uri.host}"
    return aor, display_name(address)  # no NUL: it is stored as a party's name


def sdp_of(message: Request | Response) -> SessionDescription | None:
    content_type = (message.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    body = bytes(message.body or b"")
    if content_type != SDP or not body.strip():
        return None
    return parse_sdp(body)


def copied(message: Request | Response, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """The ``names`` headers of ``message``, in order, for the other leg."""
    out: list[tuple[str, str]] = []
    for name in names:
        for value in message.headers.getlist(name):
            out.append((name, value))
    return out


def supported_without_100rel(message: Request) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in _WITHOUT_100REL:
        for value in message.headers.getlist(name):
            tokens = [t.strip() for t in value.split(",") if t.strip().lower() != "100rel"]
            if tokens:
                out.append((name, ", ".join(tokens)))
    return out


@dataclass
class Leg:
    side: Side
    transport: str  # udp | tcp | tls: how we reach this leg's peer
    remote: tuple[str, int]  # where we send this leg's requests (its PBX, trunk or phone)
    aor: str | None  # the party on this leg (user@host), for matching users
    name: str | None = None
    dialog: Dialog | None = None
    sdp: SessionDescription | None = None  # the latest SDP this leg sent us
    audio_index: int | None = None  # the m-line the relay carries
    invite_pending: bool = False  # a re-INVITE we sent on this leg awaits its answer
    party_id: str = ""  # the recording's participant id of the party on this leg
    generation: int = 0  # parties this leg has had (a transfer brings a new one)
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.party_id:
            self.party_id = self.side
