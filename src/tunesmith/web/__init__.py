"""The HTTP layer of tunesmith's two web apps (`tunesmith serve`, `tunesmith ui`): how a failed request is answered
(`HttpError`, `install_error_handlers`), who may reach a server (`BindRule`, `check_port`, `AllowedHosts`,
`HostCheck`), the cap on a request body (`BodyLimit`), the security headers on every response
(`install_security_headers`) and server-sent events (`server_sent_event`, `event_stream`). It knows HTTP, not
models: each app supplies its own wording and error format."""

from tunesmith.web.access import AllowedHosts, BindRule, HostCheck, check_port, is_loopback
from tunesmith.web.body_limit import BodyLimit
from tunesmith.web.errors import HttpError, install_error_handlers, validation_message
from tunesmith.web.events import event_stream, server_sent_event
from tunesmith.web.headers import API_POLICY, PAGE_POLICY, REPORT_POLICY, install_security_headers

__all__ = ["API_POLICY", "PAGE_POLICY", "REPORT_POLICY", "AllowedHosts", "BindRule", "BodyLimit", "HostCheck",
           "HttpError", "check_port", "event_stream", "install_error_handlers", "install_security_headers",
           "is_loopback", "server_sent_event", "validation_message"]
