"""Domain errors carry their HTTP status; one handler renders them, never a stack trace."""

from __future__ import annotations


class AssistantError(Exception):
    status_code = 400
    ws_close_code: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(AssistantError):
    status_code = 400


class InvalidProjectName(AssistantError):
    status_code = 400
    ws_close_code = 4000

    def __init__(self, message: str = "Invalid project name") -> None:
        super().__init__(message)


class NotFound(AssistantError):
    status_code = 404


class ProjectNotFound(NotFound):
    ws_close_code = 4004

    def __init__(self, message: str = "Project not found") -> None:
        super().__init__(message)


class Unauthorized(AssistantError):
    status_code = 401
    ws_close_code = 4001


class Forbidden(AssistantError):
    status_code = 403
    ws_close_code = 4003


class Conflict(AssistantError):
    status_code = 409


class RateLimited(AssistantError):
    status_code = 429
