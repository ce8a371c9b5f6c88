"""Timeline.place on its own: unwrapped, rebased to 0, discontinuities found and bridged."""

from __future__ import annotations

from sessions.hls.timeline import Timeline


def place_all(timeline: Timeline, stamps: list[int], step: int = 33) -> list[tuple[int, int]]:
    out = []
    for stamp in stamps:
        ms = timeline.place(stamp, step)
        out.append((ms, timeline.jump))
    return out


def test_rebased_to_zero_and_unwrapped() -> None:
    start = 0xFFFF_FF00
    stamps = [start, start + 100, (start + 200) & 0xFFFF_FFFF, (start + 300) & 0xFFFF_FFFF]
    assert place_all(Timeline(), stamps) == [(0, 0), (100, 0), (200, 0), (300, 0)]


def test_small_steps_back_are_not_jumps() -> None:
    # B-frame order and audio/video interleaving step back a little: no discontinuity.
    assert place_all(Timeline(), [1000, 1100, 1050, 1200]) == [
        (0, 0),
        (100, 0),
        (50, 0),
        (200, 0),
    ]
    assert Timeline().high == 0


def test_jump_forward_is_bridged_one_step_after_the_highest() -> None:
    timeline = Timeline(forward_ms=10_000)
    got = place_all(timeline, [0, 1000, 60_000, 60_040], step=40)
    assert got == [(0, 0), (1000, 0), (1040, 59_000), (1080, 0)]
    assert timeline.high == 1080


def test_jump_back_is_bridged_and_reported_negative() -> None:
    timeline = Timeline(back_ms=1000)
    got = place_all(timeline, [50_000, 52_000, 10_000, 10_020], step=20)
    assert got == [(0, 0), (2000, 0), (2020, -42_000), (2040, 0)]


def test_edges_of_the_tolerances() -> None:
    timeline = Timeline(back_ms=1000, forward_ms=10_000)
    assert place_all(timeline, [5000, 15_000, 14_000, 13_999], step=1) == [
        (0, 0),
        (10_000, 0),  # exactly forward_ms ahead: still continuous
        (9000, 0),  # exactly back_ms behind: still continuous
        (10_001, -1001),  # one more is a jump
    ]
