"""The cap on a request body's size (`BodyLimit`), applied before anything reads the body.

FastAPI reads a body whole, parses it and validates it on the event loop before a route sees it; a body of tens
of megabytes then holds every other request (``/health`` too) for as long as that takes. A body that declares a
larger ``Content-Length`` is refused (413) without a byte of it read; a chunked body, which declares nothing, is
read here up to the cap and refused as soon as it passes it. The server's own limits then bound the rest (the
prompt's characters before it is tokenized in `tunesmith serve`). Both apps install it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunesmith.web.errors import HttpError, OnFailure, Render


class BodyLimit:
    """ASGI middleware: bodies over ``limit`` bytes are answered 413 through ``render`` (and told to
    ``on_refused``)."""

    def __init__(self, app: ASGIApp, limit: int, render: Render, on_refused: OnFailure | None = None):
        self.app, self.limit, self.render, self.on_refused = app, limit, render, on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value for name, value in scope["headers"] if name in (b"content-length",
                                                                               b"transfer-encoding")}
        declared = headers.get(b"content-length")
        if declared is not None:  # the HTTP parser checked it is a number, and delivers no more than it says
            if declared.strip().isdigit() and int(declared) > self.limit:
                await self._refuse(scope, receive, send, f"{int(declared)} bytes")
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send, f"over {self.limit} bytes")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        request = Request(scope)
        error = HttpError(413, f"the request body is {size}; this server takes at most {self.limit} bytes",
                          param="body", code="request_too_large")
        if self.on_refused is not None:
            self.on_refused(request, error)
        await self.render(request, error)(scope, receive, send)
