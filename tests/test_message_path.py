"""The per-message benchmark measures what it says: every message accounted, segments made."""

from __future__ import annotations

import pytest

from bench import message_path


def test_both_halves_run_over_the_whole_clip(capsys: pytest.CaptureFixture[str]) -> None:
    assert message_path.main(["--seconds", "4", "--repeat", "2", "--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["loop", "segmenter"]
    counts = {line.split()[0]: int(line.rsplit("(", 1)[1].split()[0]) for line in lines}
    # 4 s of 30 fps video plus AAC at 48 kHz (1024 samples a frame), fed twice.
    assert counts["loop"] == counts["segmenter"]
    assert 2 * (4 * 30 + 4 * 46) <= counts["loop"] <= 2 * (4 * 30 + 4 * 48) + 8
