"""What Linux's /proc says about one process: CPU time (all its threads) and memory."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by *pid*, every thread included."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        text = fh.read()
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


@dataclass(frozen=True)
class Memory:
    """Resident memory, bytes: now (VmRSS) and the peak so far (VmHWM)."""

    rss: int
    peak_rss: int


def memory(pid: int) -> Memory:
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024  # reported in kB
    return Memory(rss=values.get("VmRSS", 0), peak_rss=values.get("VmHWM", 0))


def child_setup(cpu: int | None) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child to *cpu* and has it sent SIGTERM if this
    process dies first (so no server outlives a killed benchmark)."""

    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return setup
