"""Networks and certificate fingerprints as the operator writes them (sources.identity)."""

from __future__ import annotations

import pytest

from callvault.errors import InvalidInput
from callvault.sources.identity import (
    normalise_address,
    normalise_fingerprints,
    normalise_networks,
    parse_fingerprint,
)

FP = "0123456789abcdef" * 4


def test_networks_are_canonical() -> None:
    assert normalise_networks(["10.0.0.0/8", " 192.0.2.1 ", "2001:DB8::/32", "::1"]) == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "2001:db8::/32",
        "::1/128",
    ]


@pytest.mark.parametrize(
    "text,needle",
    [
        ("10.0.0.1/8", "host bits set; the network is 10.0.0.0/8"),
        ("10.0.0.0/33", "not an address or CIDR"),
        ("example.com", "not an address or CIDR"),
        ("", "not an address or CIDR"),
        ("0.0.0.0/0", "matches every address"),
        ("::/0", "matches every address"),
        ("::ffff:10.0.0.0/104", "IPv4-mapped"),
        ("1" * 500, "not an address or CIDR"),
    ],
)
def test_bad_networks_are_named(text: str, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle) as caught:
        normalise_networks([text])
    assert caught.value.error_id == "source-network-invalid" and caught.value.status == 422


def test_a_repeated_network_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="repeats"):
        normalise_networks(["192.0.2.1", "192.0.2.1/32"])


def test_fingerprints_plain_or_with_colons() -> None:
    colons = ":".join(FP[i : i + 2] for i in range(0, 64, 2))
    assert parse_fingerprint(FP.upper()) == FP
    assert parse_fingerprint(f" {colons.upper()} ") == FP
    with pytest.raises(InvalidInput, match="repeats"):
        normalise_fingerprints([FP, colons])
    for bad in (FP[:-2], FP + "00", "zz" * 32, colons[:-3], FP[:10] + ":" + FP[10:]):
        with pytest.raises(InvalidInput, match="SHA-256") as caught:
            parse_fingerprint(bad)
        assert caught.value.error_id == "source-fingerprint-invalid"


def test_peer_addresses() -> None:
    assert str(normalise_address("::ffff:192.0.2.1")) == "192.0.2.1"
    assert str(normalise_address("[2001:db8::1]")) == "2001:db8::1"
    assert str(normalise_address("fe80::1%eth0")) == "fe80::1"
    assert normalise_address("host.example") is None
