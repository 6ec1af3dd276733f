"""Profile the service's processes under load with py-spy, and say where the time goes.

`Profiler` runs `py-spy record --format raw --gil` against each named pid while the load runs:
only the thread holding the GIL is sampled, so the samples are the process's Python CPU time,
not its waiting (work done with the GIL released, such as SQLite's own C code or a socket
write, is not seen; waiting for a database lock is not CPU and is not seen either).
`summarise` reads the collapsed stacks: the share of samples by library of the innermost frame
(self time), and the inclusive share of the service's own functions (api/, worker/, shared/)
and of selected library entry points.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")
OURS = ("api", "worker", "shared", "cli")


def py_spy() -> str | None:
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


@dataclass
class Profiler:
    """py-spy attached to named pids, writing `<dir>/<name>.txt` (collapsed stacks)."""

    out_dir: Path
    pids: dict[str, int]
    rate: int = 100

    def __post_init__(self) -> None:
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy; scripts/bench does)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self._procs[name] = subprocess.Popen(
                [
                    *(binary, "record", "--pid", str(pid), "--format", "raw"),
                    # Only samples holding the GIL: Python's CPU time. Without it, threads
                    # waiting (a thread pool's idle workers, a loop in epoll on a busy machine)
                    # are sampled as active too.
                    *("--rate", str(self.rate), "--nonblocking", "--gil"),
                    # `assistant worker` runs Celery in a child process it supervises.
                    "--subprocesses",
                    *("--output", str(self.out_dir / f"{name}.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.out_dir / f"{name}.py-spy.log").open("wb"),
            )

    def stop(self) -> dict[str, Path]:
        """Stop sampling (SIGINT makes py-spy write its output); the files written."""
        written = {}
        for name, proc in self._procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            path = self.out_dir / f"{name}.txt"
            if path.exists():
                written[name] = path
        return written


def parse_frame(frame: str) -> tuple[str, str]:
    """(function, source path) of one collapsed-stack frame like `f (path/x.py:12)`."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match["func"], match["path"]


def package_of(path: str, repo: Path | None = None) -> str:
    """A short owner for a source path: a site-package, one of our packages, or stdlib."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    rel = path
    if repo is not None and path.startswith(str(repo)):
        rel = path[len(str(repo)) :].lstrip("/")
    top = rel.split("/", 1)[0]
    if top in OURS or top == "benchmarks":
        return top + "/"
    match = re.search(r"python3\.\d+/(.+)", path)
    if match:
        return "stdlib " + match[1].split("/", 1)[0].removesuffix(".py")
    return path or "?"


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if head and count.isdigit():
            stacks.append((head.split(";"), int(count)))
    return stacks


# What a sample was doing, by the first of these found anywhere in its stack: a turn's database
# work counts as database even though it runs under the event loop, an SDK call as the model
# stream even where pydantic does the parsing inside it.
ACTIVITIES = (
    ("database (SQLAlchemy, SQLite/psycopg)", ("sqlalchemy/", "sqlmodel/", "sqlite3/", "psycopg")),
    ("Celery / kombu (broker, events)", ("celery/", "kombu/", "billiard/")),
    ("Redis client", ("redis/",)),
    ("model stream (anthropic SDK, HTTP client)", ("anthropic/", "httpx2/", "httpcore2/", "h11/")),
    ("WebSocket (websockets, deflate)", ("websockets/", "protocols/websockets")),
    ("HTTP server / framework (uvicorn, starlette)", ("uvicorn/", "starlette/", "fastapi/")),
    ("pydantic / JSON (chunks, messages)", ("pydantic/", "pydantic_core", "json/")),
    ("logging", ("logging/",)),
    ("event loop (asyncio)", ("asyncio/", "selectors.py", "uvloop")),
    ("threads (pools, hand-offs)", ("threading.py", "concurrent/", "anyio/")),
)


def activity_of(frames: list[str]) -> str:
    for name, markers in ACTIVITIES:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    return "other"


@dataclass
class Summary:
    samples: int
    by_activity: list[tuple[str, float]]
    by_package: list[tuple[str, float]]
    self_functions: list[tuple[str, float]]
    our_functions: list[tuple[str, float]]


def _short(func: str, path: str, repo: Path | None) -> str:
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif repo is not None and path.startswith(str(repo)):
        path = path[len(str(repo)) :].lstrip("/")
    else:
        path = re.sub(r".*python3\.\d+/", "", path)
    return f"{func} ({path})"


def summarise(
    stacks: Iterable[tuple[list[str], int]], repo: Path | None = None, top: int = 15
) -> Summary:
    activities: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    self_funcs: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        activities[activity_of(frames)] += count
        parsed = [parse_frame(f) for f in frames]
        func, path = parsed[-1]
        packages[package_of(path, repo)] += count
        self_funcs[_short(func, path, repo)] += count
        seen = set()
        for func, path in parsed:
            if package_of(path, repo).rstrip("/") in OURS:
                key = _short(func, path, repo)
                if key not in seen:
                    seen.add(key)
                    ours[key] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in counter.most_common(top)] if total else []

    return Summary(total, shares(activities), shares(packages), shares(self_funcs), shares(ours))


def markdown(name: str, summary: Summary, rate: int) -> str:
    seconds = summary.samples / rate
    lines = [
        f"#### {name}: {summary.samples} samples holding the GIL (~{seconds:.1f} s at {rate} Hz)",
        "",
        "| activity (whole stack) | share |",
        "|---|---|",
        *(f"| {k} | {v:.0%} |" for k, v in summary.by_activity),
        "",
        "| self time by library | share |",
        "|---|---|",
        *(f"| {k} | {v:.0%} |" for k, v in summary.by_package),
        "",
        "| hottest functions (self) | share |",
        "|---|---|",
        *(f"| `{k}` | {v:.1%} |" for k, v in summary.self_functions),
        "",
        "| the service's functions (inclusive) | share |",
        "|---|---|",
        *(f"| `{k}` | {v:.0%} |" for k, v in summary.our_functions),
        "",
    ]
    return "\n".join(lines)
