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
    assert not code.single
    assert code.keys == ("*", digit)
    assert str(code) == f"*{digit}"


@pytest.mark.parametrize("key", list("0123456789*#"))
def test_short_code_parses_a_single_key(key: str) -> None:
    code = ShortCode.parse(key)
    assert code == ShortCode(key, single=True)
    assert code.single and code.keys == (key,)
    assert str(code) == key
    assert ShortCode.parse(str(code)) == code


def test_single_star_and_star_digit_are_different_codes() -> None:
    assert ShortCode.parse("*") != ShortCode.parse("*1")
    assert ShortCode.parse("1") != ShortCode.parse("*1")
    assert ShortCode.parse("1").keys == ("1",)


def test_short_code_default_is_star_one() -> None:
    assert ShortCode() == ShortCode.parse("*1")
    assert str(ShortCode()) == "*1"


@pytest.mark.parametrize(
    "text",
    ["#1", "*12", "**", "*#", "*A", "A", "D", " *1", "*1 ", " 5", "5 ", "", "**1", "*١", "١", "55"],
)
def test_short_code_rejects_anything_else(text: str) -> None:
    with pytest.raises(
        InvalidShortCode,
        match=r"one key \(0-9, \* or #\) or \* followed by one digit, e\.g\. 5 or \*1; got",
    ) as info:
        ShortCode.parse(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_short_code_message_names_the_bad_input() -> None:
    with pytest.raises(InvalidShortCode) as info:
        ShortCode.parse("#1")
    assert str(info.value) == (
        "the short code must be one key (0-9, * or #) or * followed by one digit,"
        " e.g. 5 or *1; got '#1'"
    )


@pytest.mark.parametrize("digit", ["", "12", "*", "#", "A", "١"])
def test_short_code_constructor_checks_its_digit(digit: str) -> None:
    with pytest.raises(InvalidShortCode, match="the digit after \\* must be one of 0-9"):
        ShortCode(digit)


@pytest.mark.parametrize("key", ["", "12", "*1", "A", "١"])
def test_short_code_constructor_checks_its_single_key(key: str) -> None:
    with pytest.raises(InvalidShortCode, match="a single key must be one of 0-9, \\* or #"):
        ShortCode(key, single=True)
