"""The playlists written for a session, straight from PlaylistWriter."""

from __future__ import annotations

from pathlib import Path

from sessions.hls.playlist import PlaylistWriter, SegmentInfo, format_date_time

T0 = 1_700_000_000.25


def segment(n: int, *, discontinuity: bool = False) -> SegmentInfo:
    return SegmentInfo(
        sequence=n,
        uri=f"seg_{n:05d}.ts",
        duration=2.0 + n / 1000,
        bytes=1000 + n,
        first_timestamp=2.0 * n,
        keyframe_start=True,
        discontinuity=discontinuity,
        program_date_time=T0 + 2 * n,
    )


def entries(text: str) -> list[tuple[str, str, str]]:
    lines = text.splitlines()
    return [
        (lines[i - 2], lines[i - 1], lines[i])
        for i, line in enumerate(lines)
        if line.endswith(".ts")
    ]


def expected(n: int) -> tuple[str, str, str]:
    return (
        f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(T0 + 2 * n)}",
        f"#EXTINF:{2.0 + n / 1000:.3f},",
        f"seg_{n:05d}.ts",
    )


def test_live_window_slides_and_deletes(tmp_path: Path) -> None:
    writer = PlaylistWriter(tmp_path, window=3, keep_all=False)
    for n in range(8):
        (tmp_path / f"seg_{n:05d}.ts").write_bytes(b"x")
        writer.add(segment(n, discontinuity=n == 1))
        live = (tmp_path / "index.m3u8").read_text()
        first = max(0, n - 2)
        assert entries(live) == [expected(k) for k in range(first, n + 1)]
        assert f"#EXT-X-MEDIA-SEQUENCE:{first}\n" in live
    # Segment 1 (a discontinuity) has slid out: counted in the discontinuity sequence.
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in live
    assert sorted(p.name for p in tmp_path.glob("*.ts")) == [f"seg_{k:05d}.ts" for k in (5, 6, 7)]
    assert not (tmp_path / "vod.m3u8").exists()
    writer.finish()
    assert (tmp_path / "index.m3u8").read_text().endswith("seg_00007.ts\n#EXT-X-ENDLIST\n")


def test_vod_lists_every_segment_and_keeps_them(tmp_path: Path) -> None:
    writer = PlaylistWriter(tmp_path, window=2, keep_all=True)
    for n in range(5):
        (tmp_path / f"seg_{n:05d}.ts").write_bytes(b"x")
        writer.add(segment(n))
    vod = (tmp_path / "vod.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT\n" in vod
    assert entries(vod) == [expected(k) for k in range(5)]
    assert entries((tmp_path / "index.m3u8").read_text()) == [expected(k) for k in (3, 4)]
    assert len(list(tmp_path.glob("*.ts"))) == 5
    writer.finish()
    vod = (tmp_path / "vod.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD\n" in vod and vod.endswith("#EXT-X-ENDLIST\n")
    assert entries(vod) == [expected(k) for k in range(5)]
