"""What Linux's /proc says about a process and its children: CPU time (all their
threads) and memory."""

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


def tree(pid: int) -> list[int]:
    """*pid* and its descendants (a server's worker processes)."""
    found = [pid]
    for parent in found:
        try:
            with open(f"/proc/{parent}/task/{parent}/children", encoding="ascii") as fh:
                found.extend(int(child) for child in fh.read().split())
        except FileNotFoundError:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of *pid* and its live descendants together."""
    total = 0.0
    for member in tree(pid):
        try:
            total += cpu_seconds(member)
        except FileNotFoundError:
            continue
    return total


@dataclass(frozen=True)
class Memory:
    """Resident memory, bytes: now (VmRSS), the peak so far (VmHWM), and the
    proportional set size now (Pss: each shared page divided among the processes that
    map it, so that processes' figures add up)."""

    rss: int
    peak_rss: int
    pss: int = 0


def memory(pid: int) -> Memory:
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024  # reported in kB
    pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name == "Pss":
                    pss = int(rest.split()[0]) * 1024
    except (FileNotFoundError, PermissionError):
        pass
    return Memory(rss=values.get("VmRSS", 0), peak_rss=values.get("VmHWM", 0), pss=pss)


def tree_memory(pid: int) -> Memory:
    """:func:`memory` summed over *pid* and its descendants: pages they share (the
    interpreter, libraries) count once per process, so this is an upper bound, and the
    peaks are each process's own, summed. The summed ``pss`` is what they hold together."""
    rss = peak = pss = 0
    for member in tree(pid):
        try:
            mem = memory(member)
        except FileNotFoundError:
            continue
        rss += mem.rss
        peak += mem.peak_rss
        pss += mem.pss
    return Memory(rss=rss, peak_rss=peak, pss=pss)


def child_setup(cpus: set[int] | None) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child (and its own children) to *cpus* and has it
    sent SIGTERM if this process dies first (so no server outlives a killed benchmark)."""

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return setup
