"""A local server speaking the Anthropic Messages API wire format.

It is the offline demo model of `assistant dev` (no ANTHROPIC_API_KEY set) and the model
stand-in of the test-suite: point the real SDK at it with ``ANTHROPIC_BASE_URL=server.url``.

Behaviour is deterministic and driven by directives in the last user message that has text
(a user message holding tool_result blocks continues the tool loop and is not a new turn):

- ``[[text:N]]``            reply ``word1 ... wordN`` in deltas of one or two words
- ``[[slow:MS]]``           sleep MS ms between deltas (default 0; 15 in the demo behaviour)
- ``[[tool:NAME JSON]]``    call k of the turn uses the k-th tool directive (after a short text);
                            when all were used, the final text quotes each tool_result's first line
- ``[[error:CODE]]``        answer HTTP CODE every time; ``[[error:CODE:K]]`` only while the SDK's
                            ``x-stainless-retry-count`` header is below K (then reply normally)
- ``[[error-midstream]]``   after the first text delta send ``event: error`` (overloaded_error);
                            a non-streaming request gets an HTTP 529 instead
- ``[[stall:S]]``           after the first text delta send nothing for S seconds, then finish
- ``[[barrier:N]]`` or ``[[barrier:N:S]]``  after message_start (streaming; before anything when
                            not streaming) hold until N barrier requests are open at once (or S
                            seconds, default 60), then reply ``barrier reached: N concurrent``
                            (or ``barrier timed out: K concurrent``) ahead of any other text
- ``[[echo]]``              reply ``echo: {"messages":n,"roles":[..],"system":"..","tools":[..]}``

Content directives (text, tool, echo, barrier) combine in the final text in the order barrier,
echo, tool summary, words. Without any content directive the DEMO behaviour runs: read a path
mentioned in the text (or list the files), then summarise the tool result.

Besides ``POST /v1/messages``: ``GET /_requests`` (the last 1000 request bodies with a subset of
their headers, keys redacted), ``DELETE /_requests`` (clear them) and ``GET /_stats`` (counters:
total_requests, statuses, streams_open/_max/_total, in_flight_* for non-streaming, barrier_open).
Retryable errors carry ``retry-after-ms: 1``: the SDK ignores a retry-after of 0 (it then backs
off 0.5 s, 1 s, ...), so this is what makes its retries immediate.
"""

from shared.demo_model.planning import (
    DEMO_DELAY_S,
    DEMO_HEAD,
    DEMO_HINT,
    Block,
    Directives,
    InvalidRequest,
    ReplyPlan,
    TextPart,
    ToolCall,
    Turn,
    current_turn,
    find_path,
    json_chunks,
    parse_directives,
    plan_reply,
    text_chunks,
    validate_request,
    with_prefix_text,
)
from shared.demo_model.server import (
    ERROR_TYPES,
    MIDSTREAM,
    RECORDED_HEADERS,
    DemoModelServer,
    create_app,
    main,
)

__all__ = [
    "DEMO_DELAY_S",
    "DEMO_HEAD",
    "DEMO_HINT",
    "ERROR_TYPES",
    "MIDSTREAM",
    "RECORDED_HEADERS",
    "Block",
    "DemoModelServer",
    "Directives",
    "InvalidRequest",
    "ReplyPlan",
    "TextPart",
    "ToolCall",
    "Turn",
    "create_app",
    "current_turn",
    "find_path",
    "json_chunks",
    "main",
    "parse_directives",
    "plan_reply",
    "text_chunks",
    "validate_request",
    "with_prefix_text",
]
