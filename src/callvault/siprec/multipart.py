"""Splitting a SIPREC INVITE body into its MIME parts (RFC 2046 section 5.1).

RFC 7866 section 9.1 carries the SDP and the recording metadata as two parts
of a ``multipart/mixed`` body. Clients put the parts in any order, add extra
parts (``application/gtd``), end lines with LF only, omit the CRLF after the
close delimiter or the close delimiter itself; all of that is accepted. A
body without a boundary or without any part raises ``RemoteProtocolError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from callvault.errors import RemoteProtocolError

MAX_PARTS: Final = 16
MAX_BODY_BYTES: Final = 256 * 1024
DEFAULT_PART_TYPE: Final = "text/plain"  # RFC 2046 section 5.1.1

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_PARAM = re.compile(
    r"""\s*;\s*([^\s=;"]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^;]*))?""",
    re.DOTALL,
)


@dataclass
class BodyPart:
    """One MIME part: its media type (lowercase, no parameters), parameters, headers, body."""

    content_type: str
    params: dict[str, str]
    headers: dict[str, str]  # names lowercased
    body: bytes


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"'):
        value = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
        return re.sub(r"\\(.)", r"\1", value)
    return value


def parse_content_type(header: str) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype; name=value; ...`` (RFC 2045 section 5.1), quotes allowed."""
    media_type, _, rest = header.partition(";")
    params: dict[str, str] = {}
    if rest:
        for match in _PARAM.finditer(";" + rest):
            params[match.group(1).lower()] = _unquote(match.group(2) or "")
    return media_type.strip().lower(), params


def _delimiter(boundary: bytes) -> re.Pattern[bytes]:
    # A delimiter line starts the body or follows a line end, which belongs to
    # the delimiter (RFC 2046 section 5.1.1); transport padding may follow it.
    return re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|\Z)")


# RFC 2046 section 5.1.1 bchars: a boundary made of them holds no line end, so
# its delimiters are found by plain search (issue 12: the regex above scanned
# every byte of the body, and each new boundary compiled a new pattern)
_BCHARS = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'()+_,-./:=? ")
_PADDING = frozenset(b" \t")


def _delimiters(body: bytes, boundary: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, is the close delimiter) of each delimiter line, as
    ``_delimiter(boundary).finditer(body)`` finds them."""
    if not boundary or not _BCHARS.issuperset(boundary):
        pattern = _delimiter(boundary)
        return [(m.start(), m.end(), bool(m.group(1))) for m in pattern.finditer(body)]
    marker = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    resume = 0  # where the search goes on: the end of the last delimiter
    pos = body.find(marker)
    while pos >= 0:
        if pos == 0:
            start = 0
        elif pos - 1 >= resume and body[pos - 1] == 0x0A:  # "\n"
            start = pos - 2 if pos - 2 >= resume and body[pos - 2] == 0x0D else pos - 1
        else:
            pos = body.find(marker, pos + 1)
            continue
        end = pos + len(marker)
        closing = body[end : end + 2] == b"--"
        if closing:
            end += 2
        while end < len(body) and body[end] in _PADDING:
            end += 1
        if end < len(body):
            if body[end] == 0x0A:
                end += 1
            elif body[end : end + 2] == b"\r\n":
                end += 2
            else:  # more on the delimiter's line: not a delimiter
                pos = body.find(marker, pos + 1)
                continue
        found.append((start, end, closing))
        resume = end
        pos = body.find(marker, end)
    return found


def _parse_headers(raw: bytes, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    last: str | None = None
    for line in raw.decode("latin-1").replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:  # folded continuation
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise RemoteProtocolError(
                f"multipart part {index} has a malformed header line {line[:40]!r}", status=400
            )
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def _make_part(raw: bytes, index: int) -> BodyPart:
    if raw.startswith(b"\r\n") or raw.startswith(b"\n"):  # no headers at all
        header_bytes, body = b"", raw[2 if raw.startswith(b"\r\n") else 1 :]
    else:
        split = _HEADER_END.search(raw)
        if split is None:
            header_bytes, body = raw, b""
        else:
            header_bytes, body = raw[: split.start()], raw[split.end() :]
    headers = _parse_headers(header_bytes, index)
    content_type, params = parse_content_type(headers.get("content-type", DEFAULT_PART_TYPE))
    return BodyPart(content_type or DEFAULT_PART_TYPE, params, headers, body)


def parse_multipart(content_type_header: str, body: bytes) -> list[BodyPart]:
    """Split a ``multipart/*`` body into its parts, in body order (RFC 2046 section 5.1)."""
    if len(body) > MAX_BODY_BYTES:
        raise RemoteProtocolError(
            f"multipart body of {len(body)} bytes exceeds {MAX_BODY_BYTES}", status=400
        )
    media_type, params = parse_content_type(content_type_header)
    if not media_type.startswith("multipart/"):
        raise RemoteProtocolError(f"body type {media_type!r} is not multipart", status=400)
    boundary = params.get("boundary", "")
    if not boundary:
        raise RemoteProtocolError(f"{media_type} Content-Type without a boundary", status=400)
    matches = _delimiters(body, boundary.encode("latin-1", errors="replace"))
    if not matches:
        raise RemoteProtocolError(
            f"{media_type} body never contains its boundary {boundary!r}", status=400
        )
    raws: list[bytes] = []
    closed = False
    for current, following in zip(matches, [*matches[1:], None], strict=True):
        if current[2]:  # close delimiter: the epilogue after it is ignored
            closed = True
            break
        end = following[0] if following is not None else len(body)
        raws.append(body[current[1] : end])
        if len(raws) > MAX_PARTS:
            raise RemoteProtocolError(f"multipart body has more than {MAX_PARTS} parts", status=400)
    if not closed and raws:
        # Close delimiter missing: a bare delimiter at the very end opens no
        # part, and the last line end would have belonged to the delimiter.
        if not raws[-1].strip():
            raws.pop()
        else:
            raws[-1] = re.sub(rb"\r?\n\Z", b"", raws[-1])
    if not raws:
        raise RemoteProtocolError(f"{media_type} body has no parts", status=400)
    return [_make_part(raw, index) for index, raw in enumerate(raws)]


def body_parts(content_type_header: str | None, body: bytes) -> list[BodyPart]:
    """The parts of any SIP body: multipart split up, anything else as one part.

    An empty body has no parts. A body without Content-Type is taken as SDP
    when it looks like one (``v=``), else refused.
    """
    if not body.strip():
        return []
    if content_type_header is None or not content_type_header.strip():
        if body.lstrip().startswith(b"v="):
            return [BodyPart("application/sdp", {}, {}, body)]
        raise RemoteProtocolError("body without Content-Type", status=400)
    media_type, params = parse_content_type(content_type_header)
    if media_type.startswith("multipart/"):
        return parse_multipart(content_type_header, body)
    return [BodyPart(media_type, params, {"content-type": content_type_header}, body)]
