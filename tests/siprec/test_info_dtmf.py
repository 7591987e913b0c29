from __future__ import annotations

import pytest

from callvault.errors import RemoteProtocolError
from callvault.siprec.info_dtmf import InfoDigit, parse_info_dtmf


@pytest.mark.parametrize(
    "ctype,body,expected",
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", InfoDigit("5", 160)),
        ("application/dtmf-relay", b"Signal= *\nDuration= 250", InfoDigit("*", 250)),
        ("Application/DTMF-Relay; charset=x", b"Signal=#", InfoDigit("#", 100)),
        ("application/dtmf", b"1", InfoDigit("1", 100)),
        ("application/dtmf", b"10", InfoDigit("*", 100)),
        ("application/sdp", b"v=0", None),
        (None, b"", None),
    ],
)
def test_info_bodies(ctype: str | None, body: bytes, expected: InfoDigit | None) -> None:
    assert parse_info_dtmf(ctype, body) == expected


@pytest.mark.parametrize(
    "ctype,body",
    [
        ("application/dtmf-relay", b"Duration=160"),
        ("application/dtmf-relay", b"Signal=X"),
        ("application/dtmf-relay", b"Signal=1\nDuration=-5"),
        ("application/dtmf", b"\xff"),
        ("application/dtmf", b"1" * 2000),
    ],
)
def test_bad_info_bodies_get_a_precise_error(ctype: str, body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_info_dtmf(ctype, body)
