"""What a stream name may be: one rule, enforced by ``check_name`` and stated in the OpenAPI
document as ``NAME_PATTERN`` (with the length limit), the two agreeing on every character."""

from __future__ import annotations

import re

import pytest

from sessions.streams import MAX_NAME_LENGTH, NAME_PATTERN, InvalidName, check_name


def _accepted(name: str) -> bool:
    try:
        check_name(name)
    except InvalidName:
        return False
    return True


def test_the_pattern_and_the_check_agree_on_every_character_that_matters() -> None:
    # Every control and white-space character lies below U+3001.
    for code in [*range(0x3001), 0xFEFF, 0xFFFD, 0x1F600, 0x10FFFF]:
        char = chr(code)
        for name in (char, f"a{char}", f"{char}a"):
            assert _accepted(name) == bool(re.fullmatch(NAME_PATTERN, name)), hex(code)


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("studio", "studio"),
        ("  studio  ", "studio"),
        ("a\u00a0b", "a\u00a0b"),
        ("é" * 200, "é" * 200),
    ],
)
def test_good_names_are_kept_without_surrounding_white_space(name: str, stored: str) -> None:
    assert check_name(name) == stored


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "\u3000",
        "bad\nname",
        "tab\there",
        "x" * (MAX_NAME_LENGTH + 1),
        " " + "x" * MAX_NAME_LENGTH,
        "\ud800",
        "a\udfff",
    ],
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)
