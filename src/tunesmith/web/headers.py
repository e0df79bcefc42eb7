"""The security headers on every response of both apps, errors, refusals and static files included
(`install_security_headers`):

- ``X-Content-Type-Options: nosniff``: a browser takes each response as the type it says (a run's
  predictions.jsonl as text, never as a script or a page it guessed).
- ``Content-Security-Policy``: where a page may load scripts, styles and data from. The UI's pages load their
  scripts and styles from its own ``/static/`` and nothing inline (`PAGE_POLICY`), so a model's answer or a data
  row that slipped past escaping still could not run; the server answers JSON and text only (`API_POLICY`).
  ``frame-ancestors 'none'``: no other site may frame either app (clickjacking a verdict button). A response that
  sets its own policy keeps it (the UI's run report is a page of inline styles and images, `REPORT_POLICY`).
- ``Referrer-Policy: no-referrer``: a link out of the UI does not tell the other site which run (or, with a token,
  which session link) it came from.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""For answers no browser should render as a page (JSON, event streams, metrics)."""
PAGE_POLICY = ("default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
"""For the UI's own pages: scripts, styles and requests from its own origin only (no inline script or style)."""
REPORT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; base-uri 'none'; "
                 "form-action 'none'; frame-ancestors 'none'")
"""For a run's report.html (`tunesmith.document.render`): its own inline stylesheet and embedded plots, and no
script at all (``sandbox`` without ``allow-scripts``)."""
CSP = "content-security-policy"


def security_headers(policy: str) -> list[tuple[bytes, bytes]]:
    """The headers every response gets, with ``policy`` as its Content-Security-Policy."""
    return [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (CSP.encode(), policy.encode())]


class SecurityHeaders:
    """ASGI middleware: adds `security_headers` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, policy: str):
        self.app, self.headers = app, security_headers(policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in self.headers if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security_headers(app: FastAPI, policy: str) -> None:
    """Give every response of ``app`` the security headers, ``policy`` its Content-Security-Policy.

    The layer goes around the whole middleware stack, not into it: Starlette answers an unhandled error (the 500
    of the app's own error handler) from its outermost layer, outside every added middleware."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(build(), policy)  # type: ignore[method-assign]
