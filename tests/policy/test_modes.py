"""Recording modes and the short code's parsing."""

from __future__ import annotations

import pytest

from callvault.policy.modes import DEFAULT_MODE, InvalidShortCode, Mode, ShortCode


def test_mode_values_are_the_stored_strings() -> None:
    assert [m.value for m in Mode] == [
        "never",
        "always",
        "always_pause",
        "on_demand_keep",
        "on_demand_user",
        "playback",
    ]
    assert Mode("on_demand_user") is Mode.ON_DEMAND_USER
    assert DEFAULT_MODE is Mode.ON_DEMAND_USER


@pytest.mark.parametrize("digit", list("0123456789"))
def test_short_code_parses_star_and_one_digit(digit: str) -> None:
    code = ShortCode.parse(f"*{digit}")
    assert code == ShortCode(digit)
    assert str(code) == f"*{digit}"


def test_short_code_default_is_star_one() -> None:
    assert ShortCode() == ShortCode.parse("*1")


@pytest.mark.parametrize(
    "text", ["#1", "*", "1", "*12", "**", "*#", "*A", " *1", "*1 ", "", "**1", "*١"]
)
def test_short_code_rejects_anything_else(text: str) -> None:
    with pytest.raises(
        InvalidShortCode, match=r"\* followed by one digit, e\.g\. \*1; got"
    ) as info:
        ShortCode.parse(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_short_code_message_names_the_bad_input() -> None:
    with pytest.raises(InvalidShortCode) as info:
        ShortCode.parse("#1")
    assert str(info.value) == "the short code must be * followed by one digit, e.g. *1; got '#1'"


@pytest.mark.parametrize("digit", ["", "12", "*", "A", "١"])
def test_short_code_constructor_checks_its_digit(digit: str) -> None:
    with pytest.raises(InvalidShortCode):
        ShortCode(digit)
