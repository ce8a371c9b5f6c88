"""The per-message benchmark measures what it says: every message accounted, segments made."""

from __future__ import annotations

import pytest

from bench import message_path


@pytest.mark.slow
def test_both_halves_run_over_the_whole_clip(capsys: pytest.CaptureFixture[str]) -> None:
    assert message_path.main(["--seconds", "4", "--repeat", "2", "--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["loop", "segmenter"]
    counts = {line.split()[0]: int(line.rsplit("(", 1)[1].split()[0]) for line in lines}
    # 4 s of 30 fps video plus AAC at 48 kHz (1024 samples a frame), fed twice.
    assert counts["loop"] == counts["segmenter"]
    assert 2 * (4 * 30 + 4 * 46) <= counts["loop"] <= 2 * (4 * 30 + 4 * 48) + 8


@pytest.mark.slow
def test_many_connections_and_split_reads_account_every_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--seconds", "2", "--repeat", "1", "--runs", "1"]
    assert message_path.main([*args, "--connections", "3", "--read-size", "1500"]) == 0
    loop = capsys.readouterr().out.splitlines()[0]
    assert message_path.main(args) == 0
    single = capsys.readouterr().out.splitlines()[0]
    count = int(single.rsplit("(", 1)[1].split()[0])
    assert int(loop.rsplit("(", 1)[1].split()[0]) == 3 * count


def test_split_reads_keep_every_byte_in_order() -> None:
    reads = [bytes([i]) * (i * 37 % 5000 + 1) for i in range(200)]
    pieces = message_path._split(reads, 1500)
    assert b"".join(pieces) == b"".join(reads)
    assert len(pieces) > 1 and max(map(len, pieces)) <= 1500 * 7 // 4
    assert message_path._split(reads, 0) == reads
