from __future__ import annotations

import pytest

from bench.media import FlvTag, make_flv, read_flv_tags


@pytest.fixture(scope="session")
def transcode_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[FlvTag]]:
    """Message streams of real encoded clips at 30 fps with a 2 s GOP and AAC (noisy
    pictures, so that an encoder spends its whole bit rate, as on camera content)."""
    base = tmp_path_factory.mktemp("transcode-clips")
    specs: dict[str, dict[str, object]] = {
        # The ladder's source, as the issue asks: 720p30 H.264 + AAC, 6 s.
        "720p": {"size": (1280, 720), "seconds": 6.0, "gop": 60, "bitrate": 2_400_000},
        "small": {"size": (320, 240), "seconds": 6.0, "gop": 60, "bitrate": 600_000},
        "hevc": {"video": "libx265", "size": (320, 240), "seconds": 4.0, "gop": 30},
        "opus": {"audio": "libopus", "size": (320, 240), "seconds": 4.0, "gop": 60},
    }
    return {
        name: read_flv_tags(make_flv(base / f"{name}.flv", **spec))  # type: ignore[arg-type]
        for name, spec in specs.items()
    }
