"""The deployment files agree with the code (no Docker engine runs here).

Every command the compose file runs exists in the CLI and parses; every variable it gives our
processes is a real setting (or one another program reads); every health check asks a path
and port the service really serves; `.env.example` is what `assistant config env-example`
prints, so it names every setting with its default and meaning.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from api.main import app as api_app
from cli.envfile import OTHERS
from cli.main import app as cli_app
from shared.config import Settings
from tests.support.processes import REPO

ASSISTANT = Path(__import__("sys").executable).parent / "assistant"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if s.get("image") == "project-assistant:latest"}
OTHER_PROGRAMS = {name for name, _, _ in OTHERS} | {"FLOWER_AUTH_PROVIDER", "FLOWER_AUTH"}
SETTINGS = {f"ASSISTANT_{name.upper()}" for name in Settings.model_fields}
DEFAULTS = Settings.model_construct()


def parses(args: list[str]) -> bool:
    """`assistant ARGS` names a real command and options it takes (click parses every option
    before it honours --help, so an unknown one fails)."""
    result = CliRunner().invoke(cli_app, [*args, "--help"])
    return result.exit_code == 0 and "Usage:" in result.output


def test_the_services_the_issue_names_are_there() -> None:
    assert {"redis", "postgres", "migrate", "api", "worker", "flower"} <= set(SERVICES)
    assert set(OURS) == {"migrate", "api", "worker", "flower"}


@pytest.mark.parametrize("service", sorted(OURS))
def test_every_command_exists_in_the_cli(service: str) -> None:
    command = OURS[service]["command"]
    assert command[0] == "assistant"
    assert parses(command[1:]), command


def test_a_wrong_command_would_be_caught() -> None:
    assert parses(["api", "--host", "0.0.0.0"])
    assert not parses(["api", "--no-such-option", "1"])
    assert not parses(["no-such-command"])


@pytest.mark.parametrize("service", sorted(OURS))
def test_every_variable_is_a_real_setting(service: str) -> None:
    names = set(OURS[service].get("environment") or {})
    assert names, f"{service} gets no settings"
    unknown = {n for n in names if n not in SETTINGS and n not in OTHER_PROGRAMS}
    assert not unknown, f"{service} sets variables nothing reads: {unknown}"


def _health_urls(service: dict[str, Any]) -> list[tuple[int, str]]:
    test = " ".join(service["healthcheck"]["test"])
    return [
        (int(port), path) for port, path in re.findall(r"http://127\.0\.0\.1:(\d+)(/\w*)", test)
    ]


def test_health_checks_ask_what_the_services_serve() -> None:
    api_routes = set(api_app.openapi()["paths"])
    api_port = int(OURS["api"]["command"][OURS["api"]["command"].index("--port") + 1])
    assert _health_urls(OURS["api"]) == [(api_port, "/readyz")]
    assert "/readyz" in api_routes and "/healthz" in api_routes

    # The worker's own metrics server, on the port its settings give it.
    worker_env = OURS["worker"]["environment"]
    port = int(worker_env.get("ASSISTANT_WORKER_METRICS_PORT", DEFAULTS.worker_metrics_port))
    assert _health_urls(OURS["worker"]) == [(port, "/metrics")]
    assert worker_env["ASSISTANT_WORKER_METRICS_ADDRESS"] == "0.0.0.0"  # reachable in-network

    flower_cmd = OURS["flower"]["command"]
    flower_port = int(flower_cmd[flower_cmd.index("--port") + 1])
    from flower.urls import handlers

    flower_paths = {h[0] if isinstance(h, tuple) else h.regex.pattern for h in handlers}
    assert _health_urls(OURS["flower"]) == [(flower_port, "/healthcheck")]
    assert any(p.rstrip("$") == "/healthcheck" for p in flower_paths)
    assert all("healthcheck" in s for s in SERVICES.values() if s is not SERVICES["migrate"])


def test_restart_policies_volumes_and_shutdown_grace() -> None:
    for name in ("redis", "postgres", "api", "worker", "flower"):
        assert SERVICES[name]["restart"] in ("unless-stopped", "always", "on-failure:5"), name
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert SERVICES[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    redis = SERVICES["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]
    assert {"redis-data", "postgres-data"} <= set(COMPOSE["volumes"])
    # A stopping worker gets longer than its grace period (then it hands turns back).
    grace = float(SERVICES["worker"]["environment"]["ASSISTANT_WORKER_SHUTDOWN_GRACE_S"])
    assert _seconds(SERVICES["worker"]["stop_grace_period"]) > grace
    # Flower is published on loopback only and gets its login from the environment.
    assert SERVICES["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert "ASSISTANT_FLOWER_BASIC_AUTH" in SERVICES["flower"]["environment"]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match.group(1))


def test_env_example_is_generated_from_the_settings() -> None:
    printed = subprocess.run(
        [str(ASSISTANT), "config", "env-example"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert (REPO / ".env.example").read_text() == printed, (
        "run `assistant config env-example > .env.example`"
    )
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
        assert f"# ASSISTANT_{name.upper()}=" in printed
