"""CPU time and memory of groups of processes, read from /proc (Linux).

A group is a set of root pids and all their descendants (a worker that forks helpers counts
whole). CPU is user + system time; memory is the resident set size, sampled while the load runs
so the peak of the group's sum is seen (the kernel's per-process peak, VmHWM, is kept too).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the command: state(0) ppid(1) ... utime(11) stime(12).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    try:
        pages = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * _PAGE


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark of the process's resident set (VmHWM)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def descendants(roots: Iterable[int]) -> set[int]:
    """The roots and every process below them."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [r for r in roots if (PROC / str(r)).exists()]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy (not idle or waiting on I/O) since boot."""
    fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class GroupStats:
    cpu_s: float
    peak_rss: int
    peak_rss_by_name: dict[str, int]
    cpu_s_by_name: dict[str, float] = field(default_factory=dict)


@dataclass
class ProcessGroup:
    """Named root pids (e.g. {"api": 123, "worker": 456, "redis": 789})."""

    roots: dict[str, int]
    _cpu_start: dict[int, float] = field(default_factory=dict)
    _peak_total: int = 0
    _peak_by_name: dict[str, int] = field(default_factory=dict)
    # The process trees, found at begin() and end(): scanning /proc at every sample would cost
    # the load generator's CPU, and the service's processes do not fork under load.
    _pids: dict[str, set[int]] = field(default_factory=dict)

    def _tree(self) -> dict[str, set[int]]:
        self._pids = {name: descendants([pid]) for name, pid in self.roots.items()}
        return self._pids

    def cpu_by_pid(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pids in self._tree().values() for pid in pids}

    def begin(self) -> None:
        self._cpu_start = self.cpu_by_pid()
        self._peak_total = 0
        self._peak_by_name = {}
        self.sample()

    def sample(self) -> int:
        """Record the group's resident memory now; returns the total."""
        total = 0
        for name, pids in (self._pids or self._tree()).items():
            rss = sum(rss_bytes(p) for p in pids)
            self._peak_by_name[name] = max(self._peak_by_name.get(name, 0), rss)
            total += rss
        self._peak_total = max(self._peak_total, total)
        return total

    def end(self) -> GroupStats:
        now = self.cpu_by_pid()
        self.sample()
        # A process that ended meanwhile keeps its last reading out of the sum: rare, and
        # reported rather than guessed.
        by_name = {
            name: sum(now.get(p, 0.0) - self._cpu_start.get(p, 0.0) for p in pids)
            for name, pids in self._pids.items()
        }
        cpu = sum(t - self._cpu_start.get(pid, 0.0) for pid, t in now.items())
        return GroupStats(cpu, self._peak_total, dict(self._peak_by_name), by_name)

    @contextlib.asynccontextmanager
    async def sampling(self, interval_s: float = 0.25) -> AsyncIterator[None]:
        """Sample memory in the background while the block runs."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                await asyncio.to_thread(self.sample)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
