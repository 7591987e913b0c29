"""SIP message framing, parsing and serialisation.

Implements RFC 3261 section 7 (message syntax, 7.3.1 header folding, compact
forms), 18.3 (framing by Content-Length) and 20 (which headers a request must
carry). ``sipmessage`` supplies the header grammar (URI, Via, Address, CSeq);
the raw bytes are normalised here first because ``sipmessage`` assumes
well-formed CRLF input. Every malformed input surfaces as
``RemoteProtocolError`` carrying the status to answer with, never as another
exception. NUL (U+0000), which PostgreSQL's text columns cannot hold: RFC
3261's grammar allows it only escaped in a quoted string (``"\\<NUL>"``, RFC
4475 3.1.1.3), so a bare NUL in the header block and any NUL in the Call-ID
(stored with the call) are a 400; ``display_name`` drops an escaped one from a
display name (the B2BUA stores them as party names).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import sipmessage
from sipmessage import URI, Address, CSeq, Request, Response, Via

from callvault.errors import RemoteProtocolError

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "Headers",
    "Message",
    "StreamFramer",
    "build_response",
    "display_name",
    "parse_address",
    "parse_message",
    "salvage_request",
    "serialize",
    "split_header_values",
    "tag_of",
    "top_via",
]

Message = Request | Response

MAX_MESSAGE_SIZE = 65536
MAX_HEADERS = 200

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"[!%'*+\-.0-9A-Za-z_`~]+")
_REQUEST_LINE = re.compile(r"([!%'*+\-.0-9A-Za-z_`~]+) ([^ ]+) (SIP/\d+\.\d+)")
_STATUS_LINE = re.compile(r"SIP/(\d+\.\d+) ([1-6]\d\d)(?: (.*))?")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s")  # what str.isspace calls white space (Py_UNICODE_ISSPACE)
_CONTENT_LENGTH = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)\r?$")

# Compact forms (RFC 3261 7.3.3 and the IANA registry) and canonical spelling.
_CANONICAL = {
    name.lower(): name
    for name in (
        "Accept", "Allow", "Call-ID", "Contact", "Content-Disposition", "Content-Encoding",
        "Content-Length", "Content-Type", "CSeq", "Event", "From", "Max-Forwards", "Min-SE",
        "Record-Route", "Refer-To", "Require", "Route", "Session-Expires", "Subject",
        "Supported", "To", "User-Agent", "Via", "Warning", "Server", "Allow-Events",
    )
}  # fmt: skip
_COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
    "y": "Identity",
}  # fmt: skip
_CANONICAL.update({k: v for k, v in _COMPACT.items()})
# Headers whose comma-separated values we store one per entry, so that the
# top Via can be read and rewritten without re-parsing the others.
_SPLIT = frozenset({"via", "route", "record-route", "contact"})
# Headers that may appear only once (RFC 4475 3.3.8, 3.3.9).
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Content-Length", "Max-Forwards", "Content-Type")
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 422: "Session Interval Too Small", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 603: "Decline",
}  # fmt: skip


class Headers(sipmessage.Headers):
    """``sipmessage.Headers`` with an index by lower-case name.

    sipmessage keeps a list and lowers every name on every look-up; a call's
    set-up reads a message's headers some 30 times (validation, matching,
    dialogs, the response), which made ``str.lower`` the most called function of
    the SIP path (issue 12). Same behaviour: order and spelling of the first
    occurrence are kept, one entry per name, ``getlist`` returns the stored list.
    """

    def __init__(self) -> None:
        super().__init__()
        self._index: dict[str, list[str]] = {}

    def add(self, key: str, value: str) -> None:
        values = self._index.get(key.lower())
        if values is not None:
            values.append(value)
        else:
            values = self._index[key.lower()] = [value]
            self._list.append((key, values))

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self._index.get(key.lower())
        return default if values is None else values[0]

    def getlist(self, key: str) -> list[str]:
        return self._index.get(key.lower(), [])

    def remove(self, key: str) -> None:
        ikey = key.lower()
        if self._index.pop(ikey, None) is not None:
            self._list = [(k, v) for k, v in self._list if k.lower() != ikey]

    def set(self, key: str, value: str) -> None:
        self.setlist(key, [value])

    def setlist(self, key: str, values: list[str]) -> None:
        ikey = key.lower()
        old = self._index.get(ikey)
        if old is not None:  # the entry holding that very list
            self._list = [(k, values if v is old else v) for k, v in self._list]
        else:
            self._list.append((key, values))
        self._index[ikey] = values

    def __getitem__(self, key: str) -> str:
        values = self._index.get(key.lower())
        if values is None:
            raise KeyError(key)
        return values[0]


def split_header_values(value: str) -> list[str]:
    """Split a header value on top-level commas (not inside quotes or <...>)."""
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    angle = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif ch == "," and not angle:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return parts


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Drop keep-alive CRLFs and split the header block from the body."""
    data = data.lstrip(b"\r\n")
    if not data:
        raise RemoteProtocolError("Empty message (keep-alive only)")
    m = _HEADER_END.search(data)
    if m is None:
        # A datagram that ends right after its last header: no body.
        return data, b""
    return data[: m.start()], data[m.end() :]


def _header_lines(head: bytes) -> tuple[str, list[str]]:
    if b"\x00" in head and head.count(b"\x00") != head.count(b"\\\x00"):
        raise RemoteProtocolError("NUL character (U+0000) in the header")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"Header bytes are not UTF-8 (offset {exc.start})") from exc
    raw = text.split("\n")
    start_line = raw[0].rstrip("\r")
    lines: list[str] = []
    for line in raw[1:]:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t"):  # RFC 3261 7.3.1: folded continuation
            if not lines:
                raise RemoteProtocolError("Continuation line before the first header")
            lines[-1] = lines[-1] + " " + line.strip(" \t")
        else:
            lines.append(line)
            if len(lines) > MAX_HEADERS:
                raise RemoteProtocolError(f"More than {MAX_HEADERS} header lines")
    return start_line, lines


def _start(start_line: str) -> Message:
    if start_line.startswith("SIP/"):
        m = _STATUS_LINE.fullmatch(start_line)
        if m is None:
            raise RemoteProtocolError(f"Malformed Status-Line {start_line[:60]!r}")
        if m.group(1) != "2.0":
            raise RemoteProtocolError(f"SIP version {m.group(1)} not supported", 505)
        response = Response(code=int(m.group(2)), phrase=m.group(3) or "")
        response.headers = Headers()
        return response
    m = _REQUEST_LINE.fullmatch(start_line)
    if m is None:
        raise RemoteProtocolError(f"Malformed Request-Line {start_line[:60]!r}")
    method, raw_uri, version = m.groups()
    if version != "SIP/2.0":
        raise RemoteProtocolError(f"{version} not supported", 505)
    scheme = raw_uri.partition(":")[0].lower()
    if scheme not in ("sip", "sips", "tel"):
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9+\-.]*", scheme) and ":" in raw_uri:
            raise RemoteProtocolError(f"URI scheme {scheme!r} not supported", 416)
        raise RemoteProtocolError(f"Malformed Request-URI {raw_uri[:60]!r}")
    try:
        uri = URI.parse(raw_uri)
    except ValueError as exc:
        raise RemoteProtocolError(f"Malformed Request-URI {raw_uri[:60]!r}") from exc
    request = Request(method=method, uri=uri)
    request.headers = Headers()
    return request


def _fill_headers(msg: Message, lines: list[str]) -> None:
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        if not sep or not _TOKEN.fullmatch(name):
            raise RemoteProtocolError(f"Malformed header line {line[:40]!r}")
        lname = name.lower()
        name = _CANONICAL.get(lname, name)
        value = value.strip(" \t")
        if lname in _SPLIT or name == "Via":
            for part in split_header_values(value) if value != "*" else [value]:
                if not part:
                    raise RemoteProtocolError(f"Empty value in {name} header")
                msg.headers.add(name, part)
        else:
            msg.headers.add(name, value)


# An address whose URI scheme sipmessage does not know (RFC 4475 3.3.4):
# token display name or quoted string, then <absoluteURI>, or a bare URI.
_OTHER_ADDRESS = re.compile(
    r'(?:(?:"(?:[^"\\]|\\.)*"|[!%\'*+\-.0-9A-Za-z_`~ ]*)\s*<[A-Za-z][A-Za-z0-9+.\-]*:[^<>\s]+>'
    r"|[A-Za-z][A-Za-z0-9+.\-]*:[^\s;<>\"]+)(?:\s*;.*)?"
)


# Parsed header values, shared by validation, matching and dialogs: one request's
# Via is read four or five times (validation, stamping, the response address, the
# transaction key) and its From/To three times (validation, tags, the dialog), and
# sipmessage's parsers are a large share of a call's set-up (issue 12). Keyed by
# the exact text, so a cached value is what parsing it again would give; callers
# only read the objects (never change their parameters).
PARSE_CACHE = 1024


@functools.lru_cache(maxsize=PARSE_CACHE)
def _parse_via(value: str) -> Via:
    return Via.parse(value)


@functools.lru_cache(maxsize=PARSE_CACHE)
def _parse_address(value: str) -> Address:
    return Address.parse(value)


def parse_address(value: str) -> Address:
    """A From/To/Contact value parsed, shared with validation: read it, never change
    it. ``ValueError`` when it is not an address sipmessage reads."""
    return _parse_address(value)


def _valid_address(value: str) -> bool:
    try:
        _parse_address(value)
        return True
    except ValueError:
        pass
    m = _OTHER_ADDRESS.fullmatch(value)
    if m is None:
        return False
    scheme = value.split("<", 1)[-1].lstrip().split(":", 1)[0].lower()
    return scheme not in ("sip", "sips", "tel")


def _validate(msg: Message) -> int | None:
    """Check mandatory headers; return the Content-Length, if any."""
    headers = msg.headers
    for name in _MANDATORY:
        if not headers.getlist(name):
            raise RemoteProtocolError(f"Missing {name} header")
    for name in _SINGLE:
        if len(headers.getlist(name)) > 1:
            raise RemoteProtocolError(f"Multiple {name} headers")
    for value in headers.getlist("Via"):
        try:
            _parse_via(value)
        except ValueError as exc:
            raise RemoteProtocolError(f"Malformed Via {value[:60]!r}") from exc
    for name in ("From", "To"):
        if not _valid_address(headers[name]):
            raise RemoteProtocolError(f"Malformed {name} header")
    call_id = headers["Call-ID"]
    if not call_id or _SPACE.search(call_id):
        raise RemoteProtocolError("Malformed Call-ID header")
    if "\x00" in call_id:
        raise RemoteProtocolError("NUL character (U+0000) in the Call-ID")
    try:
        cseq = CSeq.parse(headers["CSeq"])
    except ValueError as exc:
        raise RemoteProtocolError("Malformed CSeq header") from exc
    if cseq.sequence >= 2**31:
        raise RemoteProtocolError("CSeq number out of range")
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise RemoteProtocolError(
            f"CSeq method {cseq.method!r} does not match request method {msg.method!r}"
        )
    max_forwards = headers.get("Max-Forwards")
    if max_forwards is not None and (
        not _DIGITS.fullmatch(max_forwards) or int(max_forwards) > 255
    ):
        raise RemoteProtocolError("Malformed Max-Forwards header")
    length = headers.get("Content-Length")
    if length is None:
        return None
    if not _DIGITS.fullmatch(length) or len(length) > 9:
        raise RemoteProtocolError(f"Malformed Content-Length {length[:20]!r}")
    return int(length)


def parse_message(data: bytes) -> Message:
    """Parse one datagram (or one framed stream message) into a Request or Response.

    Datagram rules (RFC 3261 18.3): without Content-Length the body runs to
    the end; a shorter body is an error, extra octets are discarded.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise RemoteProtocolError(f"Message larger than {MAX_MESSAGE_SIZE} bytes", 513)
    try:
        head, body = _split_head(data)
        start_line, lines = _header_lines(head)
        msg = _start(start_line)
        _fill_headers(msg, lines)
        length = _validate(msg)
    except RemoteProtocolError:
        raise
    except Exception as exc:  # sipmessage raises assorted errors on odd input
        raise RemoteProtocolError(f"Unparseable message: {type(exc).__name__}") from exc
    if length is not None:
        if len(body) < length:
            raise RemoteProtocolError(
                f"Body shorter ({len(body)}) than Content-Length ({length})"
            )
        body = body[:length]
    msg.body = body
    return msg


def salvage_request(data: bytes) -> Request | None:
    """Best-effort read of a broken request, enough to address a 400 to it.

    Returns a Request holding only Via, From, To, Call-ID and CSeq as raw
    strings, or None when those are not readable (then the input is dropped).
    Only the errors the input can cause are caught (an empty message, an
    unreadable Via); anything else is a bug here and propagates.
    """
    try:
        head, _ = _split_head(data[:MAX_MESSAGE_SIZE])
    except RemoteProtocolError:
        return None
    text = head.decode("utf-8", errors="replace")
    first, _, rest = text.partition("\n")
    method = first.split(" ", 1)[0].strip()
    if not _TOKEN.fullmatch(method) or method in ("ACK", "SIP/2.0") or "SIP/" in method:
        return None
    request = Request(method=method, uri=URI(scheme="sip", host="invalid"))
    found: dict[str, list[str]] = {}
    for line in rest.split("\n"):
        name, sep, value = line.partition(":")
        canon = _CANONICAL.get(name.strip().lower())
        if sep and canon in _MANDATORY:
            parts = split_header_values(value.strip()) if canon == "Via" else [value.strip()]
            found.setdefault(canon, []).extend(parts)
    if any(not found.get(name) for name in _MANDATORY):
        return None
    try:
        Via.parse(found["Via"][0])  # the response is routed by it (RFC 3261 18.2.2)
    except ValueError:
        return None
    for name in _MANDATORY:
        for value in found[name]:
            request.headers.add(name, value)
    return request


def serialize(msg: Message) -> bytes:
    """Serialise a message, writing a Content-Length that matches its body."""
    if isinstance(msg, Request):
        parts = [f"{msg.method} {msg.uri} SIP/2.0\r\n"]
    else:
        parts = [f"SIP/2.0 {msg.code} {msg.phrase}\r\n"]
    headers = msg.headers
    for name in headers.keys():  # noqa: SIM118 (Headers is not iterable)
        if name.lower() == "content-length":
            continue
        for value in headers.getlist(name):
            parts.append(f"{name}: {value}\r\n")
    parts.append(f"Content-Length: {len(msg.body)}\r\n\r\n")
    return "".join(parts).encode("utf-8") + msg.body


def tag_of(address: str | None) -> str | None:
    """The ``tag`` parameter of a From/To header value."""
    if address is None:
        return None
    try:
        return _parse_address(address).parameters.get("tag")
    except ValueError:
        return None


_ESCAPED_NUL = re.compile("\\\\?\x00")


def display_name(address: Address) -> str | None:
    """An address's display name as text to store: None when empty, without NUL
    (only an escaped NUL gets past ``parse_message``; it is dropped with its escape)."""
    name = address.name
    if not name:
        return None
    return _ESCAPED_NUL.sub("", name) if "\x00" in name else name


def top_via(msg: Message) -> Via:
    """The topmost Via of a message that passed ``parse_message`` (shared: read only)."""
    return _parse_via(msg.headers.getlist("Via")[0])


_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})


def build_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response to ``request`` (RFC 3261 8.2.6, 12.1.1)."""
    response = Response(code=status, phrase=reason or REASONS.get(status, "Unknown"), body=body)
    out = response.headers = Headers()
    for value in request.headers.getlist("Via"):
        out.add("Via", value)
    out.add("From", request.headers["From"])
    to = request.headers["To"]
    if to_tag is not None and status > 100 and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    out.add("To", to)
    out.add("Call-ID", request.headers["Call-ID"])
    out.add("CSeq", request.headers["CSeq"])
    if request.method in _DIALOG_CREATING and 101 <= status < 300:
        for value in request.headers.getlist("Record-Route"):
            out.add("Record-Route", value)
    for name, value in headers:
        out.add(name, value)
    if content_type is not None:
        out.set("Content-Type", content_type)
    return response


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by Content-Length (RFC 3261 18.3).

    ``feed`` returns the complete frames received so far (raw bytes, to give
    to ``parse_message``). A framing error raises ``RemoteProtocolError``:
    the stream cannot be resynchronised and the connection must be closed.
    Bare CRLF keep-alives (RFC 5626 3.5.1) between messages are skipped.

    Framing is incremental: the search for the end of the header block
    resumes where the previous read left it, and once the header is complete
    only the body length is compared, so a message arriving in tiny pieces
    costs O(n) in total rather than a rescan of the buffer on every read.
    ``in_message`` tells the transport whether a message is partly received
    (its header timeout runs from that message's first byte).
    """

    def __init__(self, max_message: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max = max_message
        self._scanned = 0  # header bytes already searched for the blank line
        self._total: int | None = None  # size of the current message, once its header is read
        self.keepalives = 0

    @property
    def in_message(self) -> bool:
        """True while part of a message (not only keep-alive CRLFs) is buffered."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return frames
            frames.append(frame)

    def _skip_keepalives(self) -> None:
        buf = self._buffer
        skip = 0
        while skip < len(buf) and buf[skip] in (0x0D, 0x0A):
            skip += 1
        if skip:
            if buf[:skip].count(b"\r\n\r\n"):
                self.keepalives += 1
            del buf[:skip]

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        if self._total is None:
            if self._scanned == 0:
                self._skip_keepalives()
                if not buf:
                    return None
            # Back up 3 bytes: the blank line (at most 4 bytes) may straddle two reads.
            m = _HEADER_END.search(buf, max(0, self._scanned - 3))
            if m is None:
                self._scanned = len(buf)
                if len(buf) > self._max:
                    raise RemoteProtocolError("Header block exceeds the message size limit", 513)
                return None
            self._total = m.end() + self._content_length(bytes(buf[: m.start()]))
            if self._total > self._max:
                raise RemoteProtocolError(f"Message larger than {self._max} bytes", 513)
        total = self._total
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        del buf[:total]  # bytearray drops a prefix without moving the rest
        self._total = None
        self._scanned = 0
        return frame

    @staticmethod
    def _content_length(head: bytes) -> int:
        found = _CONTENT_LENGTH.findall(head)
        if not found:
            raise RemoteProtocolError("Content-Length is required on stream transports")
        value = found[0].strip()
        if len(found) > 1 or not value.isdigit() or len(value) > 9:
            raise RemoteProtocolError("Malformed or repeated Content-Length on stream")
        return int(value)
