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
- ``[[context:C]]``         refuse (400 "prompt is too long") a request whose messages are over
                            C characters of JSON, as the API refuses one over the context window
- ``[[say:TEXT]]``          include TEXT verbatim in the final text (after the tool summary)
- ``[[say64:BASE64]]``      the same for text given in base64 (any markup, "]]" included)
- ``[[stop:REASON]]``       end the final response with that stop reason (scenarios.py):
                            ``max_tokens[:K]`` the text in K+1 pieces, each continuation
                            request (the worker's CONTINUE_PROMPT) getting the next one;
                            ``refusal`` half the text, then `refusal`; ``pause_turn[:K]`` K
                            paused responses before the answer (the paused content is sent
                            back); ``model_context_window_exceeded[:C]`` half the text while the
                            request's messages are over C characters of JSON, then the rest
- ``[[web_search:QUERY]]``, ``[[web_fetch:URL]]``  when the request offers that server tool,
                            a ``server_tool_use`` block and its result block, then the answer
- ``tool_choice: none`` is honoured: no more tool calls, the answer comes at once
- a request ending with an assistant message is refused (400), as the newest models refuse
  prefill, except the continuation of a paused turn

A title request (its system prompt begins with ``You write the titles of conversations``, no
tools: shared/titles.py) is answered with the first words of the question in its
``<question>`` tags, directives left out (titles.py); ``[[title-error]]`` in that question makes
it fail with HTTP 529 instead, ``[[title-stall:S]]`` answers it after S seconds.

Usage in ``message_start`` simulates prompt caching (cache.py): the prefix up to each
``cache_control`` breakpoint is cached, and a later request whose prefix matches reports
``cache_read_input_tokens`` (and ``cache_creation_input_tokens`` for what it wrote);
``message_delta`` reports the response's ``output_tokens``, as the Messages API does.

Content directives (text, tool, echo, barrier, say, stop, web) combine in the final text in the
order web results, barrier, echo, tool summary, say, words. Without any content directive the
DEMO behaviour runs: read a path mentioned in the text (or list the files), then summarise the
tool result; where the request offers autocoder's backlog tools, "what should be built next?"
and "add a feature for X" use them (backlog_demo.py).

Besides ``POST /v1/messages``: ``GET /_requests`` (the last 1000 request bodies with a subset of
their headers, keys redacted, and the ``usage`` reported to each one answered: message_start's
counts plus message_delta's ``output_tokens``), ``DELETE
/_requests`` (clear them) and ``GET /_stats`` (counters: total_requests, statuses,
streams_open/_max/_total, in_flight_* for non-streaming, barrier_open).
Retryable errors carry ``retry-after-ms: 1``: the SDK ignores a retry-after of 0 (it then backs
off 0.5 s, 1 s, ...), so this is what makes its retries immediate.
"""

from shared.devtools.demo_model.blocks import (
    Block,
    InvalidRequest,
    ReplyPlan,
    ServerCall,
    ServerResult,
    TextPart,
    ToolCall,
)
from shared.devtools.demo_model.cache import PromptCache, prompt_units
from shared.devtools.demo_model.planning import (
    DEMO_DELAY_S,
    DEMO_HEAD,
    DEMO_HINT,
    Directives,
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
from shared.devtools.demo_model.server import (
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
    "PromptCache",
    "ReplyPlan",
    "ServerCall",
    "ServerResult",
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
    "prompt_units",
    "text_chunks",
    "validate_request",
    "with_prefix_text",
]
