"""One settings object for the API, the worker and the CLI, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".assistant")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_", env_ignore_empty=True, extra="ignore"
    )

    # Storage. SQLite next to the checkout by default; PostgreSQL by URL in deployments.
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    # Unset means "no Redis configured": `assistant dev` then starts an embedded one.
    redis_url: str = ""

    # The model. ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL are read by the SDK itself.
    model: str = "claude-sonnet-4-5"
    max_tokens: int = 4096
    max_tool_rounds: int = 12
    # Character budget for the stored history sent with a resumed conversation.
    history_budget_chars: int = 60_000
    # Model stream read time-out: a stalled stream fails the turn instead of hanging it.
    model_timeout_s: float = 120.0
    model_max_retries: int = 2

    # Streaming: text deltas are coalesced for this long (or this many chars) before publishing.
    coalesce_ms: int = 40
    coalesce_max_chars: int = 2048
    # Replay log per turn: bounded in length and lifetime so Redis cannot grow without end.
    replay_maxlen: int = 5000
    replay_ttl_s: int = 3600

    # Worker liveness: a running turn refreshes its heartbeat; the watchdog acts when it lapses.
    heartbeat_interval_s: float = 2.0
    heartbeat_ttl_s: float = 10.0
    watchdog_interval_s: float = 2.0
    max_turn_attempts: int = 2
    # A queued turn no worker picked up within this time is failed (no spinner forever).
    queued_timeout_s: float = 600.0
    # Longest a turn may run; the broker's visibility timeout is set above it.
    turn_time_limit_s: float = 1800.0
    worker_concurrency: int = 200

    # Tool sandbox.
    tool_max_file_bytes: int = 512_000
    tool_max_results: int = 200
    tool_max_output_chars: int = 40_000
    tool_search_timeout_s: float = 5.0
    tool_deny_globs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            ".env",
            ".env.*",
            "*.pem",
            "*.key",
            "*.p12",
            "*.pfx",
            "id_rsa*",
            "id_ed25519*",
            "id_ecdsa*",
            ".git",
            ".git/**",
            ".ssh/**",
            ".netrc",
            ".npmrc",
            ".pypirc",
            "credentials*",
            "secrets.*",
            "*.kdbx",
        ]
    )

    # Security and limits.
    auth_mode: Literal["token", "open"] = "token"
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8000", "http://127.0.0.1:8000"]
    )
    max_message_chars: int = 32_000
    max_ws_frame_bytes: int = 256_000
    turns_per_minute: int = 20
    max_concurrent_turns_per_user: int = 3

    @field_validator("allowed_origins", "tool_deny_globs", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Lists from the environment: a JSON array or comma-separated values."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'assistant.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
