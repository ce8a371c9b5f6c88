from __future__ import annotations

import pytest

from bench.media import FlvTag, make_flv, read_flv_tags


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[FlvTag]]:
    """Message streams of real encoded clips (320x240 at 30 fps, AAC 48 kHz)."""
    base = tmp_path_factory.mktemp("clips")
    specs: dict[str, dict[str, object]] = {
        "h264_aac": {"seconds": 7.0},
        "hevc_aac": {"video": "libx265", "seconds": 7.0},
        "h264": {"audio": None, "seconds": 5.0},
        "aac": {"video": None, "seconds": 5.0},
        "long_gop": {"audio": None, "seconds": 10.0, "gop": 150},
        "h264_aac_big": {"seconds": 3.0, "size": (480, 360)},
    }
    return {
        name: read_flv_tags(make_flv(base / f"{name}.flv", **spec))  # type: ignore[arg-type]
        for name, spec in specs.items()
    }
