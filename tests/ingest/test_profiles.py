"""Rendition profiles: the rules, their messages, and the compact form."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.profiles import (
    MAX_PROFILES,
    Profile,
    ProfileError,
    check_profiles,
    format_profiles,
    parse_profiles,
    profiles_from_json,
    profiles_to_json,
)


def _p(name: str = "360p", **fields: Any) -> dict[str, Any]:
    return {"name": name, "width": 640, "height": 360, "bitrate": 800_000, **fields}


def test_a_ladder_is_checked_and_round_trips_through_json() -> None:
    ladder = check_profiles([_p(), _p("240p", width=426, height=240, fps=15, gop=2)])
    assert ladder == (
        Profile("360p", 640, 360, 800_000),
        Profile("240p", 426, 240, 800_000, fps=15, gop=2.0),
    )
    assert profiles_from_json(profiles_to_json(ladder)) == ladder
    assert profiles_to_json(ladder)[0] == {**_p(), "fps": 0, "gop": None}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([_p(width=641)], r"profiles\[0\] \(360p\): width and height must be even, got 641x360"),
        ([_p(height=359)], "must be even"),
        ([_p(bitrate=10)], r"bitrate must be 50000\.\.50000000, got 10"),
        ([_p(bitrate=60_000_000)], "bitrate must be"),
        ([_p(width=8)], r"width must be 16\.\.7680"),
        ([_p(height=5000)], r"height must be 16\.\.4320"),
        ([_p(width=640.0)], "width must be an integer, got 640.0"),
        ([_p(bitrate=True)], "bitrate must be an integer"),
        ([_p(fps=-1)], r"fps must be 0\.\.120"),
        ([_p(gop=0)], "gop must be > 0"),
        ([_p(gop=61)], "gop must be > 0 and <= 60"),
        ([_p(gop="2")], "gop must be a number of seconds"),
        ([_p(name="")], "name must be 1-32 letters"),
        ([_p(name="../x")], "name must be 1-32 letters"),
        ([_p(name="x" * 33)], "name must be 1-32 letters"),
        ([_p(), _p("360P")], "profile names must be unique: '360p' and '360P'"),
        ([_p(str(i)) for i in range(MAX_PROFILES + 1)], "at most 6 profiles, got 7"),
        ([{"name": "a", "width": 2}], r"profiles\[0\] \(a\): height is required"),
        ([_p(colour="red")], "unknown field 'colour'"),
        (["360p"], "expected an object, got str"),
    ],
)
def test_a_bad_profile_says_which_and_why(items: list[Any], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        check_profiles(items)


def test_six_profiles_are_allowed() -> None:
    assert len(check_profiles([_p(str(i)) for i in range(MAX_PROFILES)])) == MAX_PROFILES


def test_the_compact_form() -> None:
    ladder = parse_profiles("360p:640x360:800000, 240p:426x240:400000:15:2.5,x:32x32:50000:0")
    assert ladder == (
        Profile("360p", 640, 360, 800_000),
        Profile("240p", 426, 240, 400_000, fps=15, gop=2.5),
        Profile("x", 32, 32, 50_000),
    )
    assert format_profiles(ladder) == (
        "360p:640x360:800000, 240p:426x240:400000:15:2.5, x:32x32:50000"
    )
    assert parse_profiles(format_profiles(ladder)) == ladder
    assert parse_profiles("") == () and parse_profiles("  ") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("360p", "expected NAME:WIDTHxHEIGHT:BITRATE"),
        ("360p:640:800000", "size must be WIDTHxHEIGHT"),
        ("360p:640x360:800k", "bitrate must be an integer, got '800k'"),
        ("360p:640x360:800000:x", "fps must be an integer"),
        ("360p:640x360:800000:0:soon", "gop must be a number of seconds, got 'soon'"),
        ("360p:641x360:800000", "must be even"),
        ("a:640x360:800000,a:320x180:400000", "unique"),
        ("360p:640x360:800000,", r"profiles\[1\]: expected"),
    ],
)
def test_a_bad_compact_form_says_why(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profiles(text)


def test_fits_never_allows_upscaling() -> None:
    profile = Profile("p", 640, 360, 800_000)
    assert profile.fits(1280, 720) and profile.fits(640, 360)
    assert not profile.fits(638, 720) and not profile.fits(1280, 358)
