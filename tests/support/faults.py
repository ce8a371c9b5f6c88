"""Faults the durability tests provoke: a full disk under the HLS segments.

:class:`FullDisk` makes every MPEG-TS segment (of the source or a rendition) opened while
it is on be written to ``/dev/full`` (through a symlink in its own folder, where the
segment's temporary file would be), so FFmpeg's real writes fail with ENOSPC exactly as on
a full disk, as root or not, with no filesystem to mount. Segments opened while it is off
are written as usual.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from sessions.hls import files as files_module
from sessions.hls.output import SegmentWriter

DEV_FULL = Path("/dev/full")


class FullDisk:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        assert DEV_FULL.is_char_device(), "the disk-full tests need /dev/full"
        folder.mkdir(parents=True, exist_ok=True)
        self.on = False
        #: Segments opened while on.
        self.failed_opens = 0
        numbers = itertools.count()
        disk = self

        class Writer(SegmentWriter):
            def __init__(self, segment_format: Any, templates: Any, temporary: Path) -> None:
                if disk.on:
                    link = folder / f"full-{next(numbers)}.ts.tmp"
                    link.symlink_to(DEV_FULL)
                    temporary = link
                    disk.failed_opens += 1
                super().__init__(segment_format, templates, temporary)

        monkeypatch.setattr(files_module, "SegmentWriter", Writer)
