"""Who may use the UI, and which requests may change state.

- Where it binds: loopback by default; any other address only with a token (`UI_BIND`). Which names it answers
  to (the Host header) is the web layer's rule, `tunesmith.web.AllowedHosts`.
- The token: with one configured, every page and API call needs it. A browser brings it once as ``?token=`` (the
  link `tunesmith ui` prints), which sets a session cookie and redirects to the same page without it, so the
  token does not linger in the address bar or the history; scripts may send ``Authorization: Bearer TOKEN``.
  The cookie holds an HMAC of the token, not the token. Without it, a page a browser opens is a short HTML page
  that says how to open the UI (`token_page`); the API, the static files and scripts get a 401 JSON error.
- CSRF: every POST must carry the ``X-CSRF-Token`` header equal to the per-session ``tunesmith_csrf`` cookie
  (a double-submit token: a page of another site can make the browser send the cookie, but cannot read it to
  put it in a header). Pages put the token in a ``<meta>`` for their scripts. Missing or wrong → 403 JSON.

Every comparison of secrets is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tunesmith.web.bind_rules import TOKEN_VARIABLE
from tunesmith.web.bind_rules import UI_BIND as UI_BIND  # defined below both apps (the CLI checks it first)

TOKEN_COOKIE = "tunesmith_session"
CSRF_COOKIE = "tunesmith_csrf"
CSRF_HEADER = "x-csrf-token"


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"tunesmith-ui-session", hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_token(request: Request, token: str) -> Response | None:
    """None when the request may pass; otherwise the response to send: a redirect that trades a right
    ``?token=`` for the session cookie, or a 401."""
    session = session_value(token)
    if _same(request.cookies.get(TOKEN_COOKIE), session):
        return None
    bearer = request.headers.get("authorization", "")
    if _same(bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None, token):
        return None
    if request.method == "GET" and _same(request.query_params.get("token"), token):
        rest = [(key, value) for key, value in request.query_params.multi_items() if key != "token"]
        # One leading slash: "//host/..." would send the browser to another site.
        target = "/" + request.url.path.lstrip("/") + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, session, httponly=True, samesite="lax")
        return response
    if _wants_page(request):
        return token_page(wrong=request.query_params.get("token") is not None)
    return JSONResponse({"error": "this UI needs its token: open the link `tunesmith ui` printed (?token=...) or "
                                  "send Authorization: Bearer TOKEN"}, status_code=401)


def _wants_page(request: Request) -> bool:
    """A browser opening a page (not the API, not a page's script or stylesheet, not curl): it reads HTML."""
    path = request.url.path
    return (request.method in ("GET", "HEAD") and not path.startswith(("/api/", "/static/"))
            and "text/html" in request.headers.get("accept", ""))


def token_page(wrong: bool) -> HTMLResponse:
    """The 401 page a browser gets without the session cookie: what to open instead. Self-contained (no stylesheet,
    no script: without the cookie they would be refused too) and fixed text, so nothing of the request shows."""
    first = ("That token is not this UI's token." if wrong else
             "This tunesmith UI needs its token, and this browser has not brought it yet.")
    body = (f"<p>{first}</p>"
            "<p>Open the link that <code>tunesmith ui</code> printed when it started: it ends in "
            "<code>?token=</code> and the token. The UI then keeps a session cookie in this browser and drops the "
            "token from the address bar, so later pages need no token.</p>"
            "<p>Lost the link? Add <code>?token=TOKEN</code> to this page's address, with the token the UI was "
            f"started with (<code>--token</code> or <code>${TOKEN_VARIABLE}</code>). Scripts send "
            "<code>Authorization: Bearer TOKEN</code> instead.</p>")
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>Open with the token · tunesmith</title></head>"
            f"<body><main id=\"token-needed\"><h1>Open this UI with its token</h1>{body}</main></body></html>")
    return HTMLResponse(page, status_code=401, headers={"Vary": "Accept", "Cache-Control": "no-store"})


def session_csrf(request: Request) -> tuple[str, bool]:
    """``(the session's CSRF token, whether it is new)``: a new one must be set as the cookie (`set_csrf`)."""
    existing = request.cookies.get(CSRF_COOKIE)
    return (existing, False) if existing else (secrets.token_urlsafe(32), True)


def set_csrf(response: Response, value: str) -> None:
    # Lax, not Strict: a link from elsewhere (a chat message, the terminal) must find the session, not start a new
    # one whose token would make every other open tab's POSTs fail. POSTs from other sites never carry it.
    response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="lax")


def check_csrf(request: Request) -> Response | None:
    """None for a safe method or a POST whose header matches the session's cookie; otherwise a 403."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and _same(request.headers.get(CSRF_HEADER), cookie):
        return None
    return JSONResponse({"error": "missing or wrong CSRF token: reload the page and try again"}, status_code=403)
