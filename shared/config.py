"""One settings object for the API, the worker and the CLI, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.tools.limits import DENY_GLOBS

DEFAULT_DATA_DIR = Path(".assistant")
TITLES_OFF = "off"  # ASSISTANT_TITLE_MODEL=off: no model-written titles


class ModelPrice(BaseModel):
    """What a model charges, in US dollars per million tokens of each kind."""

    input: float
    output: float
    cache_read: float
    cache_write: float


def default_model_prices() -> dict[str, ModelPrice]:
    """Anthropic's list prices for current Claude models (cache writes at the 5-minute rate).
    A model id with a date suffix (claude-sonnet-4-5-20250929) takes its family's price."""

    def price(inp: float, out: float) -> ModelPrice:
        return ModelPrice(input=inp, output=out, cache_read=inp / 10, cache_write=inp * 1.25)

    return {
        "claude-opus-4-5": price(5, 25),
        "claude-opus-4-1": price(15, 75),
        "claude-opus-4": price(15, 75),
        "claude-sonnet-4-5": price(3, 15),
        "claude-sonnet-4": price(3, 15),
        "claude-3-7-sonnet": price(3, 15),
        "claude-haiku-4-5": price(1, 5),
        "claude-3-5-haiku": price(0.8, 4),
        "claude-3-haiku": price(0.25, 1.25),
    }


class Settings(BaseSettings):
    """Every setting, with its default and meaning; `.env.example` is generated from these
    descriptions (`assistant config env-example`), and a test keeps the file in sync."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_", env_ignore_empty=True, extra="ignore"
    )

    # Storage. SQLite next to the checkout by default; PostgreSQL by URL in deployments.
    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="Where the default SQLite file and `assistant dev`'s embedded Redis live.",
    )
    database_url: str = Field(
        "",
        description="Database URL, e.g. postgresql+psycopg://user:pw@host/db "
        "(empty: SQLite in the data dir).",
    )
    # Unset means "no Redis configured": `assistant dev` then starts an embedded one.
    redis_url: str = Field(
        "",
        description="Redis for the broker, pub/sub and replay logs "
        "(empty: redis://127.0.0.1:6379/0; `assistant dev` starts an embedded one).",
    )
    redis_max_connections: int = Field(
        256, description="Connections each process may open to Redis at once (more wait)."
    )

    # The model. ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL are read by the SDK itself.
    model: str = Field("claude-sonnet-4-5", description="Claude model name.")
    max_tokens: int = Field(4096, description="Most tokens the model may write per request.")
    max_tool_rounds: int = Field(
        12, description="Most tool-use rounds in one reply (the last one must answer in text)."
    )
    history_budget_chars: int = Field(
        60_000, description="Characters of stored history sent with a resumed conversation."
    )
    model_timeout_s: float = Field(
        120.0,
        description="Model stream read time-out: a stalled stream fails the turn, not hangs it.",
    )
    model_max_retries: int = Field(
        2, description="Retries of the anthropic SDK on 408/409/429/5xx (no second loop on top)."
    )
    # ASSISTANT_PROMPT_CACHE=off sends no cache_control breakpoints.
    prompt_cache: bool = Field(
        True,
        description="Send tools, system prompt and history as a cached prefix "
        "(cache_control breakpoints).",
    )
    title_model: str = Field(
        "claude-haiku-4-5",
        description="Model that writes a conversation's title after its first reply "
        "(`off`: keep the first 50 characters of the first question).",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=default_model_prices,
        description="Prices per model in USD per million tokens, as JSON {model: {input, "
        "output, cache_read, cache_write}}; a reply's cost is computed from it (a model not "
        "listed costs 0). Replaces the built-in table.",
    )
    max_tokens_continuations: int = Field(
        1, description="A reply cut off at max_tokens is continued this many times (0: never)."
    )
    web_max_uses: int = Field(
        5, description="Server-side web tools (projects with `--web on`): uses per request."
    )

    # Streaming.
    coalesce_ms: int = Field(
        40, description="Text deltas are batched this many milliseconds (0: one chunk per delta)."
    )
    coalesce_max_chars: int = Field(
        2048, description="...or until this many characters are buffered."
    )
    # Replay log per turn: bounded in length and lifetime so Redis cannot grow without end.
    replay_maxlen: int = Field(5000, description="Most chunks kept in a turn's replay log.")
    replay_ttl_s: int = Field(
        3600, description="Seconds a turn's replay log (and a stop request) lives."
    )

    # Worker liveness: a running turn refreshes its heartbeat; the watchdog acts when it lapses.
    heartbeat_interval_s: float = Field(
        2.0, description="How often a worker refreshes its turns' heartbeats and its presence."
    )
    heartbeat_ttl_s: float = Field(
        10.0,
        description="A turn whose heartbeat is this old is re-run; a worker unseen this long "
        "counts as gone (/readyz, `assistant status`).",
    )
    watchdog_interval_s: float = Field(
        2.0, description="How often each process's watchdog looks for lost or expired turns."
    )
    max_turn_attempts: int = Field(
        2, description="A turn whose worker vanished runs at most this often in total."
    )
    queued_timeout_s: float = Field(
        600.0, description="A queued turn no worker took within this time is failed."
    )
    turn_time_limit_s: float = Field(
        1800.0, description="Longest turn; the broker's visibility timeout is set above it."
    )
    worker_concurrency: int = Field(200, description="Turns one worker process holds at once.")
    # A stopping worker (SIGTERM) lets its turns run this long, then hands the rest back.
    worker_shutdown_grace_s: float = Field(
        30.0,
        description="On SIGTERM a worker takes no new turns, lets running ones finish this "
        "long, then hands the rest back to other workers (`turn_restarted`).",
    )
    # Celery task events always on (Flower turns them on by itself while it runs).
    celery_events: bool = Field(
        False,
        description="Workers always send Celery task events (Flower turns them on by itself "
        "while it runs).",
    )

    # Tool sandbox.
    tool_max_file_bytes: int = Field(512_000, description="Largest file a read returns.")
    tool_max_results: int = Field(200, description="Most entries a listing or search returns.")
    tool_max_output_chars: int = Field(
        40_000, description="Most characters of one tool result sent to the model."
    )
    tool_search_timeout_s: float = Field(
        5.0, description="Time limit of one search (pathological patterns stop here)."
    )
    # Files the tools refuse. The built-in list (shared/tools/limits.py) always applies and
    # ASSISTANT_TOOL_DENY_GLOBS adds to it; only ASSISTANT_TOOL_DENY_BUILTIN=false drops it.
    tool_deny_globs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DENY_GLOBS),
        description="Files the tools refuse inside a project, added to the built-in list "
        "(comma-separated or JSON).",
    )
    tool_deny_builtin: bool = Field(
        True, description="false drops the built-in deny-list (only the configured one applies)."
    )

    # Security and limits.
    auth_mode: Literal["token", "open"] = Field(
        "token", description="`token`: API tokens required; `open`: none (loopback dev only)."
    )
    # The server's own origin, on any host name and port, always is allowed (api/origins.py).
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Other sites whose pages may open the WebSocket, and CORS "
        "(comma-separated or JSON).",
    )
    max_message_chars: int = Field(32_000, description="Longest user message.")
    max_ws_frame_bytes: int = Field(256_000, description="Largest WebSocket frame read.")
    # HTTP request bodies above this are refused (413) before authentication and parsing.
    max_request_body_bytes: int = Field(
        1_000_000, description="Largest HTTP request body (413 above it)."
    )
    turns_per_minute: int = Field(20, description="Messages one user may send per minute.")
    max_concurrent_turns_per_user: int = Field(
        3, description="Replies one user may have running at once."
    )
    user_monthly_tokens: int = Field(
        0,
        description="Tokens (input, output, cache reads and writes) one user may spend per "
        "calendar month (UTC) before new messages are refused; 0: unlimited. An "
        "administrator sets a user's own with `assistant users set-budget`.",
    )

    # Operations.
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`json`: one JSON object per log line (API, worker, Flower); `text`: "
        "readable lines. Lines about a turn carry turn_id, conversation_id and user_id.",
    )
    metrics_token: str = Field(
        "",
        description="Bearer token that lets a non-loopback scraper read the API's /metrics "
        "(empty: /metrics answers loopback clients only).",
    )
    worker_metrics_port: int = Field(
        9464,
        description="Each worker serves Prometheus metrics here (the next free port when "
        "taken; `assistant status` shows which); 0 turns it off.",
    )
    worker_metrics_address: str = Field(
        "127.0.0.1",
        description="Interface of the workers' metrics server (0.0.0.0 only on a private "
        "network: it has no login).",
    )
    flower_basic_auth: str = Field(
        "",
        description="user:password (comma-separated for more) that `assistant flower` "
        "requires; needed unless Flower listens on loopback or FLOWER_AUTH_PROVIDER is set.",
    )

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

    @model_validator(mode="after")
    def _keep_builtin_denials(self) -> Settings:
        """A configured deny-list extends the built-in one instead of silently replacing it."""
        if self.tool_deny_builtin:
            extra = [g for g in self.tool_deny_globs if g not in DENY_GLOBS]
            self.tool_deny_globs = [*DENY_GLOBS, *extra]
        return self

    @property
    def titles_on(self) -> bool:
        return self.title_model.strip().lower() != TITLES_OFF

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
