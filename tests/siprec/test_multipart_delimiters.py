"""The multipart splitter finds delimiter lines by plain search (issue 12: the
regex scanned every byte of a body, and each new boundary compiled a pattern).
It must find exactly what the regex finds, which stays the reference and the
path for boundaries outside RFC 2046's bchars."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.siprec.multipart import _delimiter, _delimiters

PIECES = [b"--b", b"--b--", b"\r\n", b"\n", b"\r", b" ", b"\t", b"x", b"-", b"b", b"--", b"--b-"]


def _by_regex(body: bytes, boundary: bytes) -> list[tuple[int, int, bool]]:
    return [(m.start(), m.end(), bool(m.group(1))) for m in _delimiter(boundary).finditer(body)]


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=16).map(b"".join),
    st.sampled_from([b"b", b"b-", b"-", b"b b", b"b\n", b"b*"]),
)
def test_delimiters_are_the_regex_matches(body: bytes, boundary: bytes) -> None:
    assert _delimiters(body, boundary) == _by_regex(body, boundary)


def test_a_real_body() -> None:
    body = (
        b"--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
        b"--xyz \t\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording/>\r\n"
        b"--xyzz\r\n--xyz--\r\nepilogue --xyz\r\n"
    )
    found = _delimiters(body, b"xyz")
    assert [closing for _, _, closing in found] == [False, False, True]
    assert found == _by_regex(body, b"xyz")
