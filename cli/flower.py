"""`assistant flower`: Flower (Celery monitoring) for the service's broker and Celery app.

Flower can cancel tasks and shut workers down, so it never listens beyond loopback without a
login: ASSISTANT_FLOWER_BASIC_AUTH (user:password), or Flower's own OAuth settings
(FLOWER_AUTH_PROVIDER, FLOWER_AUTH, FLOWER_OAUTH2_KEY, ... passed through as they are). The
password goes to Flower through its environment (FLOWER_BASIC_AUTH), never the command line,
so `ps` does not show it.
"""

from __future__ import annotations

import ipaddress
import os

import typer

from shared.config import get_settings
from shared.logs import configure_logging

NEEDS_LOGIN = (
    "Flower on {address} needs a login: set ASSISTANT_FLOWER_BASIC_AUTH=user:password "
    "(or Flower's OAuth settings, e.g. FLOWER_AUTH_PROVIDER and FLOWER_AUTH), "
    "or listen on 127.0.0.1"
)


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def login_problem(address: str, basic_auth: str, environ: dict[str, str]) -> str | None:
    """Why Flower must not start on `address` with these settings (None: it may)."""
    for entry in filter(None, (e.strip() for e in basic_auth.split(","))):
        user, _, password = entry.partition(":")
        if not user or not password:
            return "ASSISTANT_FLOWER_BASIC_AUTH must be user:password (comma-separated for more)"
    has_login = bool(
        basic_auth.strip()
        or environ.get("FLOWER_BASIC_AUTH")
        or environ.get("FLOWER_AUTH_PROVIDER")
    )
    if not has_login and not is_loopback(address):
        return NEEDS_LOGIN.format(address=address or "every interface")
    return None


def run_flower(port: int, address: str, extra: list[str]) -> None:
    settings = get_settings()
    problem = login_problem(address, settings.flower_basic_auth, dict(os.environ))
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    if settings.flower_basic_auth.strip():
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.strip()
    # Before Flower's tornado adds its own handler: its lines come out like every other.
    configure_logging(settings.log_format, "flower")
    from worker.celery_app import celery_app

    celery_app.start(["flower", f"--port={port}", f"--address={address}", *extra])
