"""Keep a child process running: restart it when it exits unasked, stop it when we are stopped.

`assistant worker` runs its Celery worker in a child process under `supervise`: Celery ends its
process (with status 0) on errors it deems unrecoverable, such as a broker connection failure
it cannot clean up after, and nothing else in a plain deployment (systemd's
`Restart=on-failure`, `assistant dev`) would bring a worker back from status 0. The supervisor
restarts the child with exponential backoff and gives up, exiting non-zero so that an outer
supervisor or the operator notices, after `max_restarts` restarts in a row that each ran less
than `stable_after_s`.

Stop signals (SIGTERM, SIGINT, SIGQUIT) are forwarded once each, exactly as received, so
Celery's own warm shutdown (SIGTERM, first SIGINT) and cold shutdown (SIGQUIT, second SIGINT)
keep working; the child runs in its own session so a terminal's Ctrl-C reaches it only through
us, once. On Linux the child is killed if the supervisor dies (kill -9 included), so it is never
left behind running turns nobody supervises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# Forwarded without meaning "stop": Celery dumps its threads' stacks on SIGUSR1.
PASS_SIGNALS = (signal.SIGUSR1,)
GAVE_UP_STATUS = 3
_PR_SET_PDEATHSIG = 1


@dataclass
class RestartBudget:
    """Backoff and a bound on restarts in a row; a run that lasted `stable_after_s` resets it."""

    max_restarts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    stable_after_s: float = 60.0
    in_a_row: int = 0

    def next_delay(self, ran_for_s: float) -> float | None:
        """Seconds to wait before the next start, or None: give up."""
        if ran_for_s >= self.stable_after_s:
            self.in_a_row = 0
        if self.in_a_row >= self.max_restarts:
            return None
        delay = min(self.backoff_s * 2.0**self.in_a_row, self.max_backoff_s)
        self.in_a_row += 1
        return delay


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def shell_status(code: int) -> int:
    """A Popen return code as a process exit status (a signal death becomes 128 + signal)."""
    return 128 - code if code < 0 else code


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def supervise(
    argv: Sequence[str],
    budget: RestartBudget,
    say: Callable[[str], None],
    name: str = "child",
) -> int:
    """Run `argv` until we are asked to stop or give up; our exit status."""
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None
    stopped_pids: set[int] = set()  # the children a stop signal was forwarded to

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum in STOP_SIGNALS:
            stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)
            if signum in STOP_SIGNALS:
                stopped_pids.add(child.pid)

    previous = {sig: signal.signal(sig, forward) for sig in (*STOP_SIGNALS, *PASS_SIGNALS)}
    try:
        while True:
            started = time.monotonic()
            child = subprocess.Popen(
                list(argv), start_new_session=True, preexec_fn=_die_with_parent
            )
            say(f"{name} started (pid {child.pid})")
            if stop.is_set() and child.pid not in stopped_pids:
                # Asked to stop while it was being started: the handler had nothing to forward to.
                child.send_signal(signal.SIGTERM)
            code = child.wait()
            if stop.is_set():
                return shell_status(code)
            delay = budget.next_delay(time.monotonic() - started)
            if delay is None:
                say(
                    f"{name} exited unexpectedly ({describe_exit(code)}) "
                    f"{budget.max_restarts + 1} times in a row; giving up"
                )
                return GAVE_UP_STATUS
            say(f"{name} exited unexpectedly ({describe_exit(code)}); restarting in {delay:g}s")
            if stop.wait(delay):
                return shell_status(code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child is not None and child.poll() is None:  # only if we are leaving by an exception
            child.kill()
            child.wait()
