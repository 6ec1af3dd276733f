"""The load benchmark: the service against the in-process baseline, on the same load.

For each N of the sweep it starts each system afresh (the baseline, then the real stack: Redis,
the database, `python -m cli api`, `python -m cli worker`), runs N simulated people against it
(benchmarks.loadgen) with the same seed, and measures from the words' stamps and /proc. The
Messages API stand-in (benchmarks.standin) runs in its own process for the whole run; its CPU
and the load generator's are reported but never counted as the service's.

    scripts/bench                      # the full sweep (README: Benchmarks), ~15 minutes
    scripts/bench --quick              # a short sweep (.assistant/benchmark-quick.*)
    scripts/bench --clients 100,200 --turns 3 --postgres
    scripts/bench --open 10000         # 10,000 open conversations: the service's memory

Writes docs/benchmark.md (table, saturation, the issue's numbers), docs/benchmark.png and
docs/benchmark.json unless told otherwise (--out, --plot, --json; --no-plot).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import render
from benchmarks.loadgen import LoadConfig, run_load
from benchmarks.procstats import (
    ProcessGroup,
    cpu_seconds,
    machine_busy_seconds,
    self_cpu_seconds,
)
from benchmarks.pyspy import Profiler, markdown, read_stacks, summarise
from benchmarks.report import Point
from benchmarks.report import summarise as summarise_point
from benchmarks.systems import REPO, Baseline, Service, Standin, System

T = TypeVar("T")
DOCS = REPO / "docs"
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def raise_nofile(needed: int) -> int:
    """Raise this process's open-file limit (inherited by the processes it starts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard < needed and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    return min(needed, hard)


def measure(system: System, cfg: LoadConfig, standin: Standin) -> Point:
    group = ProcessGroup(system.roots)
    # One conversation first, unmeasured: lazy imports and first connections (to the model,
    # Redis, the database) are paid once per process, not by the load.
    warm = replace(cfg, clients=1, turns=1, think_max_s=0, ramp_s=0)
    warmed = run_async(run_load(system, warm))
    if not all(r.ok for r in warmed.replies):
        raise RuntimeError(f"{system.name}: the warm-up turn failed: {warmed.replies}")
    time.sleep(1.0)  # let start-up work settle before the clock starts

    async def go() -> Point:
        group.begin()
        standin_before, self_before = cpu_seconds(standin.pid), self_cpu_seconds()
        machine_before = machine_busy_seconds()
        async with group.sampling():
            result = await run_load(system, cfg)
        stats = group.end()
        standin_cpu = cpu_seconds(standin.pid) - standin_before
        loadgen_cpu = self_cpu_seconds() - self_before
        # What the rest of the machine (other people's work) took meanwhile: noise to report.
        others = machine_busy_seconds() - machine_before - stats.cpu_s - standin_cpu - loadgen_cpu
        return summarise_point(
            system.name, cfg.clients, result, stats, standin_cpu, loadgen_cpu, max(others, 0.0)
        )

    return run_async(go())


def start_system(name: str, args: argparse.Namespace, tmp: Path, model_url: str, n: int) -> System:
    if name == "baseline":
        return Baseline(tmp, model_url)
    return Service(
        tmp,
        model_url,
        users=n,
        postgres_admin_url=args.postgres_url if args.postgres else None,
        apis=args.apis,
        workers=args.workers,
    )


def load_config(args: argparse.Namespace, clients: int) -> LoadConfig:
    return LoadConfig(
        clients=clients,
        turns=args.turns,
        words=args.words,
        first_token_delay_s=args.delay_ms / 1000,
        think_max_s=args.think_max,
        ramp_s=args.ramp,
        seed=args.seed,
        reply_timeout_s=args.reply_timeout,
        compression=not args.no_compression,
    )


def sweep(args: argparse.Namespace, tmp: Path, standin: Standin) -> list[Point]:
    points = []
    for n in args.clients:
        for name in args.systems:
            print(f"N={n} {name}: starting", file=sys.stderr, flush=True)
            system = start_system(name, args, tmp, standin.url, n)
            try:
                point = measure(system, load_config(args, n), standin)
            finally:
                system.stop()
            points.append(point)
            print(f"N={n} {name}: {render.one_line(point)}", file=sys.stderr, flush=True)
    return points


def profile(args: argparse.Namespace, tmp: Path, standin: Standin, out_dir: Path) -> str:
    """One more run of each system at N=--profile-at with py-spy attached (not in the table):
    the baseline's profile shows what the work common to both (the SDK, the WebSocket) costs."""
    n = args.profile_at
    parts = []
    for name in args.systems:
        print(f"N={n} {name} under py-spy: starting", file=sys.stderr, flush=True)
        system = start_system(name, args, tmp, standin.url, n)
        try:
            targets = {k: v for k, v in system.roots.items() if not k.startswith("redis")}
            profiler = Profiler(out_dir / name, targets)
            profiler.start()
            try:
                point = measure(system, load_config(args, n), standin)
            finally:
                written = profiler.stop()
        finally:
            system.stop()
        parts.append(
            f"### {name}\n\nAt N={n} under py-spy (100 Hz, samples holding the GIL): "
            f"{render.one_line(point)}.\n"
        )
        for process, path in written.items():
            parts.append(markdown(process, summarise(read_stacks(path), REPO), 100))
    return "\n".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--clients", default="50,100,200,300,500", help="the sweep of N")
    p.add_argument("--systems", default="baseline,service")
    p.add_argument("--turns", type=int, default=2, help="turns per conversation (>= 1)")
    p.add_argument("--words", type=int, default=100, help="words per reply")
    p.add_argument("--rate", type=float, default=50.0, help="words per second")
    p.add_argument("--delay-ms", type=float, default=200.0, help="first-token delay")
    p.add_argument("--think-max", type=float, default=10.0, help="think time: up to this (s)")
    p.add_argument("--ramp", type=float, default=2.0, help="connects spread over this (s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reply-timeout", type=float, default=60.0)
    p.add_argument("--no-compression", action="store_true", help="no permessage-deflate")
    p.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    p.add_argument("--postgres-url", default=ADMIN_URL, help="admin URL of the server")
    p.add_argument("--apis", type=int, default=1, help="API processes (clients spread)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--profile-at", type=int, default=100, help="py-spy pass at this N (0: none)")
    p.add_argument("--standin-check", type=int, default=500, help="streams for its check (0: none)")
    p.add_argument(
        "--priority",
        type=int,
        default=0,
        help="nice value for the benchmark and what it starts (root: e.g. -5, so other work "
        "on a shared machine disturbs the figures less; both systems get the same)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="N=20,50, think up to 3 s, no profile; written to .assistant/benchmark-quick.*",
    )
    p.add_argument("--open", type=int, default=0, help="hold this many conversations open")
    p.add_argument("--streaming", type=int, default=20, help="--open: how many keep streaming")
    p.add_argument("--hold", type=float, default=20.0, help="--open: seconds to hold them")
    p.add_argument("--out", type=Path, help="default docs/benchmark.md (--open: -open.md)")
    p.add_argument("--plot", type=Path, help="default docs/benchmark.png")
    p.add_argument("--json", type=Path, help="default docs/benchmark.json (--open: -open.json)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument(
        "--from-json", type=Path, help="only re-render --out (and the plot) from a saved run"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.think_max, args.profile_at = "20,50", 3.0, 0
        args.standin_check = 0
    stem = "benchmark-open" if args.open else "benchmark"
    # A quick run is a check, not the record: it goes to the (ignored) data directory.
    where = REPO / ".assistant" if args.quick else DOCS
    stem += "-quick" if args.quick else ""
    args.out = args.out or where / f"{stem}.md"
    args.json = args.json or where / f"{stem}.json"
    args.plot = args.plot or where / f"{stem}.png"
    args.no_plot = args.no_plot or bool(args.open)
    args.clients = [int(n) for n in str(args.clients).split(",") if n.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if set(args.systems) - {"baseline", "service"} or not args.systems:
        p.error("--systems takes baseline and/or service")
    if args.turns < 1 or args.words < 1 or args.rate <= 0 or not args.clients:
        p.error("--turns, --words, --rate and --clients must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json is not None:
        write_outputs(json.loads(args.from_json.read_text()), args, rewrite_json=False)
        return
    if args.priority:
        os.setpriority(os.PRIO_PROCESS, 0, args.priority)  # inherited by every child
    biggest = max([*args.clients, args.open])
    raise_nofile(2 * biggest + 1024)
    tmp = Path(tempfile.mkdtemp(prefix="assistant-bench-"))
    started = time.time()
    load_before = os.getloadavg()
    standin = Standin(tmp, args.words, args.rate, args.delay_ms / 1000)
    result: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv}
    try:
        if args.open:
            from benchmarks.open_conns import hold_open

            result["open"] = [
                hold_open(start_system(name, args, tmp, standin.url, args.open), args, standin)
                for name in args.systems
            ]
        else:
            if args.standin_check:
                from benchmarks.standin_check import check

                result["standin_check"] = run_async(check(standin, args.standin_check, 10.0))
            result["points"] = sweep(args, tmp, standin)
            if args.profile_at:
                result["profile_md"] = profile(args, tmp, standin, tmp / "profile")
    finally:
        standin.stop()
    result["meta"] = render.meta(args, started, load_before, tmp)
    write_outputs(result, args)


def write_outputs(
    result: dict[str, Any], args: argparse.Namespace, rewrite_json: bool = True
) -> None:
    if rewrite_json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))
    if "points" in result and not args.no_plot:
        from benchmarks.plot import write_plot

        write_plot(result["points"], args.plot, render.plot_title(result["meta"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render.document(result, args))
    print(render.document(result, args))
    written = [
        args.out,
        *([args.json] if rewrite_json else []),
        *([] if args.no_plot else [args.plot]),
    ]
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
