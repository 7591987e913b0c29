"""SIP dialog state (RFC 3261 section 12) for the UAS and UAC sides.

Creation from an INVITE and its 2xx (12.1.1, 12.1.2), in-dialog request
construction with loose/strict routing (12.2.1.1) and validation of incoming
in-dialog requests (12.2.2). Session timers (RFC 4028) live in
``session_timer`` and are re-exported here.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sipmessage import URI, Address, Parameters, Request, Response

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.sip.message import parse_address, tag_of
from callvault.sip.session_timer import SessionIntervalTooSmall, SessionTimer

__all__ = [
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "SessionIntervalTooSmall",
    "SessionTimer",
    "dialog_id_of",
]

logger = logging.getLogger(__name__)

DialogId = tuple[str, str, str]  # Call-ID, local tag, remote tag
_TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})


class DialogState(enum.Enum):
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def dialog_id_of(request: Request) -> DialogId:
    """The id of the dialog an incoming request claims, seen from our side."""
    return (
        request.headers["Call-ID"],
        tag_of(request.headers.get("To")) or "",
        tag_of(request.headers.get("From")) or "",
    )


def _without_tag(value: str) -> str:
    address = parse_address(value)  # shared with validation: read only
    params = {k: v for k, v in address.parameters.items() if k.lower() != "tag"}
    return str(Address(uri=address.uri, name=address.name, parameters=Parameters(**params)))


def _contact_uri(message: Request | Response) -> URI:
    contacts = message.contact
    if len(contacts) != 1:
        raise RemoteProtocolError(f"Expected one Contact, got {len(contacts)}")
    return contacts[0].uri


@dataclass
class Dialog:
    """One dialog; ``local_*`` is our side whichever role we played."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    local_cseq: int
    remote_cseq: int | None
    remote_target: URI
    local_contact: str
    route_set: list[str] = field(default_factory=list)
    state: DialogState = DialogState.CONFIRMED
    session_timer: SessionTimer | None = None

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_incoming_invite(
        cls, request: Request, local_tag: str, local_contact: str
    ) -> Dialog:
        """UAS side (12.1.1): built when we answer the INVITE with a 2xx."""
        try:
            return cls(
                call_id=request.headers["Call-ID"],
                local_tag=local_tag,
                remote_tag=tag_of(request.headers["From"]) or "",
                local_uri=_without_tag(request.headers["To"]),
                remote_uri=_without_tag(request.headers["From"]),
                local_cseq=0,
                remote_cseq=request.cseq.sequence,
                remote_target=_contact_uri(request),
                local_contact=local_contact,
                route_set=list(request.headers.getlist("Record-Route")),
            )
        except (ValueError, KeyError) as exc:
            raise RemoteProtocolError(f"Cannot build dialog from INVITE: {exc}") from exc

    @classmethod
    def from_outgoing_invite(cls, request: Request, response: Response) -> Dialog:
        """UAC side (12.1.2): built from our INVITE and the 2xx we received."""
        try:
            return cls(
                call_id=request.headers["Call-ID"],
                local_tag=tag_of(request.headers["From"]) or "",
                remote_tag=tag_of(response.headers["To"]) or "",
                local_uri=_without_tag(request.headers["From"]),
                remote_uri=_without_tag(response.headers["To"]),
                local_cseq=request.cseq.sequence,
                remote_cseq=None,
                remote_target=_contact_uri(response),
                local_contact=request.headers.get("Contact") or "",
                route_set=list(reversed(response.headers.getlist("Record-Route"))),
            )
        except (ValueError, KeyError) as exc:
            raise RemoteProtocolError(f"Cannot build dialog from 2xx: {exc}") from exc

    def matches(self, request: Request) -> bool:
        return dialog_id_of(request) == self.id

    def create_request(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """An in-dialog request (12.2.1.1); the endpoint adds Via and Content-Length."""
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"dialog {self.call_id} is terminated")
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not sent with create_request")
        self.local_cseq += 1
        return self._build(method, self.local_cseq, body, content_type, headers)

    def create_ack(
        self, invite_cseq: int, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """The ACK for a 2xx to our INVITE (13.2.2.4): same CSeq number as the INVITE."""
        return self._build("ACK", invite_cseq, body, content_type, ())

    def _build(
        self,
        method: str,
        cseq: int,
        body: bytes,
        content_type: str | None,
        headers: Iterable[tuple[str, str]],
    ) -> Request:
        routes = list(self.route_set)
        uri = self.remote_target
        if routes and "lr" not in Address.parse(routes[0]).uri.parameters:
            # Strict routing: the first route becomes the Request-URI.
            uri = Address.parse(routes.pop(0)).uri
            routes.append(f"<{self.remote_target}>")
        request = Request(method=method, uri=uri, body=body)
        out = request.headers
        for route in routes:
            out.add("Route", route)
        out.add("Max-Forwards", "70")
        out.add("From", f"{self.local_uri};tag={self.local_tag}")
        to = f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri
        out.add("To", to)
        out.add("Call-ID", self.call_id)
        out.add("CSeq", f"{cseq} {method}")
        if self.local_contact and method in ("INVITE", "UPDATE", "ACK"):
            out.add("Contact", self.local_contact)
        for name, value in headers:
            out.add(name, value)
        if content_type is not None:
            out.set("Content-Type", content_type)
        return request

    def validate_request(self, request: Request) -> None:
        """Check an incoming in-dialog request (12.2.2) and apply target refresh.

        Raises ``RemoteProtocolError(500)`` for an out-of-order CSeq.
        """
        if request.method in ("ACK", "CANCEL"):
            return
        cseq = request.cseq.sequence
        if self.remote_cseq is not None and cseq < self.remote_cseq:
            raise RemoteProtocolError(
                f"CSeq {cseq} lower than the last one in this dialog ({self.remote_cseq})", 500
            )
        self.remote_cseq = cseq
        if request.method in _TARGET_REFRESH and request.headers.get("Contact"):
            try:
                self.remote_target = _contact_uri(request)
            except ValueError as exc:
                raise RemoteProtocolError("Malformed Contact in target refresh") from exc
        if request.method == "BYE":
            self.terminate()

    def terminate(self) -> None:
        if self.state is not DialogState.TERMINATED:
            logger.debug("dialog %s: %s -> terminated", self.call_id, self.state.value)
            self.state = DialogState.TERMINATED


class DialogSet:
    """The dialogs we hold, looked up by the id an incoming request carries."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def __len__(self) -> int:
        return len(self._dialogs)

    def lookup(self, request: Request) -> Dialog:
        """The dialog for an in-dialog request; ``RemoteProtocolError(481)`` if unknown."""
        dialog = self._dialogs.get(dialog_id_of(request))
        if dialog is None:
            raise RemoteProtocolError("Call/Transaction Does Not Exist", 481)
        return dialog
