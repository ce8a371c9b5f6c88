"""TimestampUnwrapper: wrap at 2**32 and backward steps (case 38)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.flv import TimestampUnwrapper

WRAP = 1 << 32


def unwrap_all(values: list[int]) -> list[int]:
    unwrapper = TimestampUnwrapper()
    return [unwrapper.unwrap(v) for v in values]


def test_first_value_taken_as_is() -> None:
    assert unwrap_all([123456]) == [123456]
    assert TimestampUnwrapper().last is None


def test_wrap_at_2_pow_32_case_38() -> None:
    assert unwrap_all([0xFFFFFFF0, 0x00000010]) == [0xFFFFFFF0, WRAP + 0x10]


def test_steady_stream_across_the_wrap() -> None:
    start = WRAP - 100
    values = [(start + 33 * i) % WRAP for i in range(10)]
    assert unwrap_all(values) == [start + 33 * i for i in range(10)]


def test_small_backward_step_stays_small() -> None:
    assert unwrap_all([1000, 990, 1010]) == [1000, 990, 1010]


def test_backward_step_across_the_wrap() -> None:
    # After wrapping, an interleaved track slightly behind steps back over the boundary.
    assert unwrap_all([0xFFFFFFF0, 0x10, 0xFFFFFFFA, 0x20]) == [
        0xFFFFFFF0,
        WRAP + 0x10,
        0xFFFFFFFA,
        WRAP + 0x20,
    ]


def test_backward_from_start_goes_negative() -> None:
    assert unwrap_all([5, 0xFFFFFFFB]) == [5, -5]


def test_large_jumps_take_the_shorter_way() -> None:
    forward = (1 << 31) - 1
    assert unwrap_all([0, forward]) == [0, forward]
    assert unwrap_all([0, 1 << 31]) == [0, -(1 << 31)]


def test_second_wrap_keeps_extending() -> None:
    step = 0x70000000  # under half the range: always read forwards
    values = [(i * step) % WRAP for i in range(12)]
    assert unwrap_all(values) == [i * step for i in range(12)]
    assert unwrap_all(values)[-1] > 2 * WRAP


def test_out_of_range_input_is_reduced() -> None:
    assert unwrap_all([WRAP + 7]) == [7]


def test_last_and_reset() -> None:
    unwrapper = TimestampUnwrapper()
    unwrapper.unwrap(0xFFFFFFFF)
    unwrapper.unwrap(1)
    assert unwrapper.last == WRAP + 1
    unwrapper.reset()
    assert unwrapper.last is None
    assert unwrapper.unwrap(50) == 50


@given(
    start=st.integers(min_value=0, max_value=1 << 40),
    steps=st.lists(st.integers(min_value=-(1 << 31) + 1, max_value=(1 << 31) - 1), max_size=50),
)
def test_recovers_any_timeline_with_steps_under_half_the_range(
    start: int, steps: list[int]
) -> None:
    timeline = [start]
    for step in steps:
        timeline.append(timeline[-1] + step)
    got = unwrap_all([t % WRAP for t in timeline])
    offset = start - start % WRAP
    assert got == [t - offset for t in timeline]
