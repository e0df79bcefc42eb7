"""Who may reach a tunesmith server: where it may bind, whether its port is free, and which names it answers to.

- Binding: loopback by default; any other address only with a secret (the server's API key, the UI's token), as
  anyone who can reach the machine could otherwise use it (`BindRule`).
- The port: one in use is a one-line error before anything starts (`check_port`), rather than uvicorn's log after
  the model loaded or the link was printed.
- The Host header: a page of another site can point its own name at 127.0.0.1 (DNS rebinding) and then reach a
  loopback server from the visitor's browser, as if it were that site; the browser still sends the site's name as
  the Host. So a request is answered only when its Host is a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``,
  any port), the address the server was bound to, or a name the user admitted with ``--allowed-host``
  (`AllowedHosts`, checked by `HostCheck` before anything else sees the request).
- The Origin header: a page of another site may still send a request to ``http://127.0.0.1:PORT`` itself (a form, a
  ``fetch`` in ``no-cors`` mode): the Host is then a loopback name, and the browser does not let the page read the
  answer, but the request is made (a reload of the served models, a feedback line that becomes training data).
  Browsers name the page that sent such a request in ``Origin``; a request whose Origin is not a name the server
  answers to (by the same rule as the Host) is refused with a 403. Programs (curl, SDKs) send no Origin.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tunesmith.errors import ConfigError
from tunesmith.web.errors import HttpError, OnFailure, Render

ALLOWED_HOST_OPTION = "--allowed-host"
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::(?P<port>[0-9]{1,5}))?")
"""A Host header: a name or IPv4 address, or an IPv6 address in brackets, then an optional port. Anything else
(userinfo, paths, spaces) is refused rather than guessed at."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a name from a Host header) stays on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class BindRule:
    """A server's rule for binding beyond loopback, in its own words: which option holds its secret and what an
    exposed server would give away."""

    secret: str
    """The secret, as the error names it: "an API key", "a token"."""
    option: str
    """The option that sets it: ``--api-key``, ``--token``."""
    variable: str
    """The environment variable that sets it."""
    exposes: str
    """What anyone who can reach the machine could do: "use the model"."""

    def check(self, host: str, secret: str | None) -> None:
        if secret or is_loopback(host):
            return
        raise ConfigError("--host", f"binding {host} (not a loopback address) without {self.secret} would let anyone "
                          f"who can reach this machine {self.exposes}", f"give {self.option} (or set {self.variable})")


def check_port(host: str, port: int) -> None:
    """Fail in one line now if ``host:port`` cannot be listened on (in use, or not an address of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed port is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError("--port", f"cannot listen on {host}:{port}: {error.strerror}",
                              "give another --port, or stop what uses it") from None


def host_name(header: str) -> str | None:
    """The name a Host header gives (lower case, no port, IPv6 without brackets, no trailing dot); None when it is
    not a Host header."""
    match = _HOST.fullmatch(header.strip())
    if match is None:
        return None
    return (match["ipv6"] or match["name"]).lower().rstrip(".") or None


@dataclass(frozen=True)
class AllowedHosts:
    """The names a server answers to: the loopback names, the address it is bound to, and ``extra`` (each an
    ``--allowed-host``)."""

    bound: str
    extra: tuple[str, ...] = ()

    @classmethod
    def of(cls, bound: str, extra: Iterable[str] = ()) -> AllowedHosts:
        """The rule for a server bound to ``bound``; a malformed ``--allowed-host`` is a one-line error."""
        names = []
        for given in extra:
            name = host_name(given)
            if name is None:
                raise ConfigError(ALLOWED_HOST_OPTION, f"{given!r} is not a host name",
                                  "give a name or address as a browser's address bar shows it, without "
                                  "http:// or a path, e.g. --allowed-host models.example.com")
            names.append(name)
        return cls(bound.lower().strip("[]"), tuple(names))

    def admits(self, name: str) -> bool:
        return is_loopback(name) or name == self.bound or name in self.extra

    def refusal(self, header: str | None) -> HttpError | None:
        """None when a request with this Host header may be answered, else the 400 to answer it with."""
        if not header:
            return HttpError(400, "the request has no Host header", code="invalid_host")
        name = host_name(header)
        if name is None:
            return HttpError(400, f"the Host header {header[:100]!r} is not a host name", code="invalid_host")
        if self.admits(name):
            return None
        return HttpError(400, f"this server does not answer to the host {name[:100]!r} (it answers to localhost, "
                              f"loopback addresses, the address it listens on and the names given with "
                              f"{ALLOWED_HOST_OPTION}): to reach it by this name, start it with "
                              f"{ALLOWED_HOST_OPTION} {name[:100]}", code="invalid_host")

    def origin_refusal(self, header: str | None) -> HttpError | None:
        """None when a request with this Origin header (None: a program's request, or a browser's from its own page
        by GET) may be answered, else the 403 to answer it with: another site's page sent it."""
        if header is None:
            return None
        try:
            name = urlsplit(header.strip()).hostname
        except ValueError:  # an unclosed IPv6 bracket
            name = None
        if name is not None and self.admits(name.rstrip(".")):
            return None
        return HttpError(403, f"a page of another site ({header[:100]!r}) sent this request: refused, as it could make "
                              f"your browser use this server; to let a page at that address use it, start the server "
                              f"with {ALLOWED_HOST_OPTION} {name[:100] if name else 'NAME'}", code="invalid_origin")


class HostCheck:
    """ASGI middleware: refuses (in the app's format) a request whose Host header the server does not answer to
    (400), or that a page of another site sent (its Origin, 403), before any other middleware or route sees it, and
    tells ``on_refused`` of it (the server logs it). Add it last, so it is the outermost layer.

    Written here rather than taken from Starlette's ``TrustedHostMiddleware``: that one answers in plain text
    ("Invalid host header"), not in each app's error format, and cannot say which option admits a name."""

    def __init__(self, app: ASGIApp, hosts: AllowedHosts, render: Render, on_refused: OnFailure | None = None):
        self.app, self.hosts, self.render, self.on_refused = app, hosts, render, on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # Neither app has WebSocket routes (the router would close it too), but a foreign one is closed here
            # (policy violation), so no route added later is open to another site by default.
            headers = Headers(scope=scope)
            if self.hosts.refusal(headers.get("host")) or self.hosts.origin_refusal(headers.get("origin")):
                await send({"type": "websocket.close", "code": 1008})
                return
        if scope["type"] == "http":  # lifespan has no Host
            headers = Headers(scope=scope)
            refusal = self.hosts.refusal(headers.get("host")) or self.hosts.origin_refusal(headers.get("origin"))
            if refusal is not None:
                request = Request(scope, receive)
                if self.on_refused is not None:
                    self.on_refused(request, refusal)
                response = self.render(request, refusal)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
