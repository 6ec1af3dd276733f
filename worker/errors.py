"""What a client is told when a turn fails: short and clear; the details go to the log.

`describe_error` is the one place a failed turn's exception is classified, so it also counts
it in the `assistant_model_errors_total{kind}` metric.
"""

from __future__ import annotations

import logging

import anthropic
import httpx2

from worker.metrics import MODEL_ERRORS

log = logging.getLogger(__name__)

INTERNAL = "The reply failed because of an internal error."
TOO_LONG = "The reply took too long and was stopped."
CANNOT_START = "The reply could not be started because of an internal error."
REFUSED = (
    "Claude declined to continue this reply (its safety systems stopped it), so the partial "
    "answer was discarded. Try rephrasing your question."
)
CONTEXT_TOO_LONG = (
    "The conversation is too long for the model's context window, even with the earlier "
    "history left out. Start a new conversation, or ask about a smaller part of the project."
)


def prompt_too_long(exc: BaseException) -> bool:
    """The model service refused the request as longer than the model's context window."""
    return isinstance(exc, anthropic.BadRequestError) and "prompt is too long" in str(exc).lower()


def describe_error(exc: BaseException, turn_id: int) -> str:
    """A short, clear message for a failed turn, with the upstream request id to quote when
    there is one; the upstream detail (its raw error body) goes to the log, never the client."""
    request_id = getattr(exc, "request_id", None)  # APIStatusError: the `request-id` header
    quote = f" (request id {request_id})" if isinstance(request_id, str) and request_id else ""
    kind, message = classify(exc)
    MODEL_ERRORS.labels(kind).inc()
    if isinstance(exc, anthropic.APIError):
        log.warning("turn %s: model service error (%s)%s: %s", turn_id, kind, quote, exc)
    elif kind == "internal":
        log.error("turn %s failed", turn_id, exc_info=exc)
    return message + quote


def _stream_error_type(exc: BaseException) -> str | None:
    """The `error.type` of an `error` event received in the middle of a stream (the SDK raises
    it as an APIStatusError carrying the stream's own status, 200), if that is what `exc` is."""
    if not isinstance(exc, anthropic.APIStatusError) or exc.status_code >= 400:
        return None
    body = exc.body
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else "api_error"


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, message): the kind labels the metric; the message is what the client reads."""
    midstream = _stream_error_type(exc)
    if midstream == "overloaded_error":
        return "overloaded", (
            "The model became overloaded in the middle of this reply and stopped. Please try again."
        )
    if midstream is not None:
        return "stream_error", (
            f"The model service failed in the middle of this reply ({midstream[:40]}). "
            "Please try again."
        )
    if isinstance(exc, anthropic.RateLimitError):
        return "rate_limited", (
            "The model is rate-limited right now (429). Please try again in a moment."
        )
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code == 529:
        return "overloaded", (
            "The model is overloaded right now (529). Please try again in a moment."
        )
    if isinstance(exc, anthropic.AuthenticationError):
        return "authentication", (
            "The model service rejected the API key (401). Check ANTHROPIC_API_KEY."
        )
    if isinstance(exc, anthropic.BadRequestError):
        return "bad_request", "The model service refused the request (400)."
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code >= 500:
            return "server_error", (
                f"The model service failed ({exc.status_code}). Please try again."
            )
        return "status_error", f"The model service returned an error ({exc.status_code})."
    if isinstance(exc, anthropic.APITimeoutError):
        return "timeout", "The model did not respond in time. Please try again."
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection", "Could not reach the model service. Please try again."
    # Errors while reading an open stream reach us as the HTTP client's own exceptions.
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout", "The model did not respond in time. Please try again."
    if isinstance(exc, httpx2.TransportError):
        return "connection", "The connection to the model service was lost. Please try again."
    if isinstance(exc, anthropic.APIError):
        # e.g. an error event in the middle of the stream (overloaded mid-reply).
        return "stream_error", "The model stream failed. Please try again."
    return "internal", INTERNAL
