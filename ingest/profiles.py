"""Rendition profiles (Livepeer's shape) and the rules they must follow, in one place.

A profile asks for one H.264 rendition of a stream's sessions: ``{name, width, height,
bitrate, fps, gop}``, ``bitrate`` in bits per second, ``fps`` 0 for the source's frame rate,
``gop`` in seconds between keyframes (``None``: a keyframe wherever the source has one; the
renditions always have one where a source segment starts). The API, the configuration's
default ladder and the command line all go through :func:`check_profiles`, whose errors
name the profile and the field; the OpenAPI document states the same limits from the
constants here.

The compact form, for the configuration and the command line, is
``NAME:WIDTHxHEIGHT:BITRATE[:FPS[:GOP]]`` (``360p:640x360:800000``), several separated by
commas. This module imports nothing of the server: the configuration checks its default
ladder with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BITRATE",
    "MAX_FPS",
    "MAX_GOP",
    "MAX_HEIGHT",
    "MAX_PROFILES",
    "MAX_WIDTH",
    "MIN_BITRATE",
    "MIN_SIZE",
    "NAME_PATTERN",
    "DuplicateProfileName",
    "Profile",
    "ProfileError",
    "check_profiles",
    "format_profiles",
    "parse_profiles",
    "profiles_from_json",
    "profiles_to_json",
]

#: Profiles one stream may have.
MAX_PROFILES = 6
#: A profile's name: it names the rendition's folder and playlist, so letters, digits,
#: ``_`` and ``-`` only, starting with a letter or digit, at most 32 characters.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
MIN_SIZE = 16
MAX_WIDTH = 7680
MAX_HEIGHT = 4320
#: Bits per second.
MIN_BITRATE = 50_000
MAX_BITRATE = 50_000_000
MAX_FPS = 120
#: Seconds between keyframes, at most.
MAX_GOP = 60.0

_NAME = re.compile(NAME_PATTERN)
_FIELDS = ("name", "width", "height", "bitrate", "fps", "gop")
_SIZE = re.compile(r"(\d+)x(\d+)")


class ProfileError(ValueError):
    """A profile (or a list of them) that breaks a rule; the message says which and why."""


class DuplicateProfileName(ProfileError):
    """Two profiles of one list have the same name (whatever the case)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One rendition a stream asks for (checked: make them with :func:`check_profiles`)."""

    name: str
    width: int
    height: int
    bitrate: int
    fps: int = 0
    gop: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "bitrate": self.bitrate,
            "fps": self.fps,
            "gop": self.gop,
        }

    def fits(self, width: int, height: int) -> bool:
        """Whether this profile is no larger than a ``width`` x ``height`` picture (a
        rendition is never upscaled)."""
        return self.width <= width and self.height <= height

    def __str__(self) -> str:
        text = f"{self.name}:{self.width}x{self.height}:{self.bitrate}"
        if self.fps or self.gop is not None:
            text += f":{self.fps}"
        if self.gop is not None:
            text += f":{self.gop:g}"
        return text


def _integer(where: str, field: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProfileError(f"{where}: {field} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ProfileError(f"{where}: {field} must be {low}..{high}, got {value}")
    return value


def _profile(index: int, data: Mapping[str, Any] | Profile) -> Profile:
    if isinstance(data, Profile):
        data = data.to_json()
    where = f"profiles[{index}]"
    if not isinstance(data, Mapping):
        raise ProfileError(f"{where}: expected an object, got {type(data).__name__}")
    unknown = sorted(str(key) for key in data if key not in _FIELDS)
    if unknown:
        raise ProfileError(f"{where}: unknown field {unknown[0]!r}")
    name = data.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        where = f"{where} ({name})"
    for field in ("name", "width", "height", "bitrate"):
        if field not in data:
            raise ProfileError(f"{where}: {field} is required")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProfileError(
            f"{where}: name must be 1-32 letters, digits, '_' or '-' (starting with a "
            f"letter or digit), got {name!r}"
        )
    width = _integer(where, "width", data["width"], MIN_SIZE, MAX_WIDTH)
    height = _integer(where, "height", data["height"], MIN_SIZE, MAX_HEIGHT)
    if width % 2 or height % 2:
        raise ProfileError(f"{where}: width and height must be even, got {width}x{height}")
    bitrate = _integer(where, "bitrate", data["bitrate"], MIN_BITRATE, MAX_BITRATE)
    fps = _integer(where, "fps", data.get("fps", 0), 0, MAX_FPS)
    gop = data.get("gop")
    if gop is not None:
        if not isinstance(gop, int | float) or isinstance(gop, bool) or not math.isfinite(gop):
            raise ProfileError(f"{where}: gop must be a number of seconds, got {gop!r}")
        if not 0 < gop <= MAX_GOP:
            raise ProfileError(f"{where}: gop must be > 0 and <= {MAX_GOP:g} seconds, got {gop}")
        gop = float(gop)
    return Profile(name, width, height, bitrate, fps, gop)


def check_profiles(items: Iterable[Mapping[str, Any] | Profile]) -> tuple[Profile, ...]:
    """The profiles, checked: each one's fields, at most :data:`MAX_PROFILES`, and names
    unique (whatever their case: they name folders). Raises :class:`ProfileError`."""
    profiles = tuple(_profile(index, item) for index, item in enumerate(items))
    if len(profiles) > MAX_PROFILES:
        raise ProfileError(f"at most {MAX_PROFILES} profiles, got {len(profiles)}")
    seen: dict[str, str] = {}
    for profile in profiles:
        folded = profile.name.casefold()
        if folded in seen:
            raise DuplicateProfileName(
                f"profile names must be unique: {seen[folded]!r} and {profile.name!r}"
            )
        seen[folded] = profile.name
    return profiles


def _parse_one(index: int, text: str) -> dict[str, Any]:
    parts = text.split(":")
    if not 3 <= len(parts) <= 5:
        raise ProfileError(
            f"profiles[{index}]: expected NAME:WIDTHxHEIGHT:BITRATE[:FPS[:GOP]], got {text!r}"
        )
    where = f"profiles[{index}] ({parts[0]})"
    size = _SIZE.fullmatch(parts[1].strip())
    if size is None:
        raise ProfileError(f"{where}: size must be WIDTHxHEIGHT, e.g. 640x360, got {parts[1]!r}")
    data: dict[str, Any] = {
        "name": parts[0].strip(),
        "width": int(size.group(1)),
        "height": int(size.group(2)),
    }
    for field, value in zip(("bitrate", "fps"), parts[2:4], strict=False):
        value = value.strip()
        if not (value.isascii() and value.isdigit()):
            raise ProfileError(f"{where}: {field} must be an integer, got {value!r}")
        data[field] = int(value)
    if len(parts) == 5:
        try:
            data["gop"] = float(parts[4])
        except ValueError:
            raise ProfileError(
                f"{where}: gop must be a number of seconds, got {parts[4]!r}"
            ) from None
    return data


def parse_profiles(text: str) -> tuple[Profile, ...]:
    """Profiles in the compact form, separated by commas (``""``: none); checked."""
    items = [part.strip() for part in text.split(",")]
    if items == [""]:
        return ()
    return check_profiles(_parse_one(index, item) for index, item in enumerate(items))


def format_profiles(profiles: Iterable[Profile]) -> str:
    """The compact form of ``profiles`` (what :func:`parse_profiles` reads back)."""
    return ", ".join(str(profile) for profile in profiles)


def profiles_to_json(profiles: Iterable[Profile]) -> list[dict[str, Any]]:
    """As the store keeps them and the API shows them."""
    return [profile.to_json() for profile in profiles]


def profiles_from_json(items: Iterable[Mapping[str, Any]]) -> tuple[Profile, ...]:
    """Profiles kept by the store (checked again: a row edited by hand fails here, not
    in an encoder)."""
    return check_profiles(items)
