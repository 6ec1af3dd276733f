"""The tools' limits and the deny-list of secret files, defined once.

`Settings` (shared/config.py) starts from `DENY_GLOBS`, and the worker builds its limits with
`limits_from_settings`, so what the tests check is what a deployment runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.config import Settings

# Matched case-insensitively against every component of a path and against the whole path, so
# `.ssh` also covers `sub/.ssh/config` and `*.env` covers `deploy/prod.env`.
DENY_GLOBS: tuple[str, ...] = (
    # environment files and shell/dev secrets
    ".env", ".env.*", "*.env", ".envrc", ".netrc", ".npmrc", ".pypirc", ".pgpass", ".htpasswd",
    ".git-credentials", "credentials*", "*.credentials", "secrets.*", ".vault-token", ".s3cfg",
    ".boto", "application_default_credentials.json",
    # keys, certificates and keystores
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "*.ppk",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    # directories that hold credentials (or the repository's history and config)
    ".git", ".ssh", ".gnupg", ".aws", ".azure", ".docker", ".kube",
    # infrastructure state with secrets in clear
    "*.tfstate", "*.tfstate.*", "*.tfvars",
    # this service's own data directory (the default ASSISTANT_DATA_DIR: database, Redis)
    ".assistant",
)  # fmt: skip


@dataclass(frozen=True)
class ToolLimits:
    max_file_bytes: int = 512_000  # bigger files: read only by line range; never searched
    max_read_lines: int = 2000  # lines returned by one Read call at most
    max_results: int = 200  # Glob entries / Grep output lines at most
    max_output_chars: int = 40_000  # every tool result is truncated to this, with a note
    search_timeout_s: float = 5.0  # wall-clock budget for a Grep (and for a Glob walk)
    deny_globs: tuple[str, ...] = DENY_GLOBS
    # A regular file with several hard links may be the same file as one outside the project;
    # refused unless an administrator allows it for the project (`projects set --hardlinks on`).
    allow_hardlinks: bool = False


DEFAULT_LIMITS = ToolLimits()


def limits_from_settings(settings: Settings, allow_hardlinks: bool = False) -> ToolLimits:
    """The limits a worker runs the tools with (and the tests check)."""
    return ToolLimits(
        max_file_bytes=settings.tool_max_file_bytes,
        max_results=settings.tool_max_results,
        max_output_chars=settings.tool_max_output_chars,
        search_timeout_s=settings.tool_search_timeout_s,
        deny_globs=tuple(settings.tool_deny_globs),
        allow_hardlinks=allow_hardlinks,
    )
