"""How both apps answer a request that fails: every failure becomes an `HttpError` (a status and a one-line message,
never a traceback) and is answered by the app's own ``render`` (OpenAI-style JSON for the server, a page or JSON for
the UI).

What becomes what: an app's own `HttpError` as it is; a request that does not validate → ``validation_status`` with
"where: problem" (`validation_message`); a path or method the app does not have → its 404/405; a user mistake
(`TunesmithError`) → its ``status`` (400 by default); anything else → 500 "internal error: TYPE", logged with its
traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith.errors import TunesmithError

log = logging.getLogger("tunesmith")


class HttpError(Exception):
    """A request answered with an error: ``status``, a one-line ``message``, and where known the request field at
    fault (``param``) and a machine-readable ``code``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


Render = Callable[[Request, HttpError], Response]
"""How an app answers an error (its format: JSON, a page)."""
OnFailure = Callable[[Request, HttpError], None]
"""Told of each failure of a request that reached a route (the server logs them); not of unknown paths."""


def validation_message(error: RequestValidationError) -> tuple[str, str | None]:
    """``(message, field)`` for a request pydantic refused: the first problem as "field: problem" (and how many
    more there are), or that the body is not JSON at all."""
    problems = error.errors()
    first = problems[0] if problems else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{where or 'body'}: {first.get('msg', 'invalid')}{more}", where or None


def install_error_handlers(app: FastAPI, render: Render, validation_status: int = 400,
                           on_failure: OnFailure | None = None) -> None:
    """Answer every failure of ``app``'s requests through ``render``."""
    handlers = _ErrorHandlers(render, validation_status, on_failure)
    app.add_exception_handler(HttpError, handlers.app_error)
    app.add_exception_handler(RequestValidationError, handlers.invalid_request)
    app.add_exception_handler(StarletteHTTPException, handlers.routing_error)
    app.add_exception_handler(TunesmithError, handlers.user_error)
    app.add_exception_handler(Exception, handlers.server_error)


class _ErrorHandlers:
    def __init__(self, render: Render, validation_status: int, on_failure: OnFailure | None):
        self.render, self.validation_status, self.on_failure = render, validation_status, on_failure

    def _failed(self, request: Request, error: HttpError) -> Response:
        if self.on_failure is not None:
            self.on_failure(request, error)
        return self.render(request, error)

    async def app_error(self, request: Request, error: HttpError) -> Response:
        return self._failed(request, error)

    async def invalid_request(self, request: Request, error: RequestValidationError) -> Response:
        message, where = validation_message(error)
        return self._failed(request, HttpError(self.validation_status, message, param=where))

    async def routing_error(self, request: Request, error: StarletteHTTPException) -> Response:
        # Starlette's own: a path or method the app does not have. Nothing was asked of the app, so nothing failed.
        return self.render(request, HttpError(error.status_code, str(error.detail)))

    async def user_error(self, request: Request, error: TunesmithError) -> Response:
        return self._failed(request, HttpError(getattr(error, "status", 400), str(error)))

    async def server_error(self, request: Request, error: Exception) -> Response:
        log.exception("request failed: %s %s", request.method, request.url.path)
        return self._failed(request, HttpError(500, f"internal error: {type(error).__name__}"))
