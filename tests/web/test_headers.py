"""The security headers: on every answer of an app (its 500s too), a policy of the answer's own kept."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from tunesmith.web import API_POLICY, HttpError, install_error_handlers, install_security_headers
from tunesmith.web.headers import security_headers


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, lambda request, error: PlainTextResponse(error.message, status_code=error.status))
    app.get("/ok")(lambda: {"ok": True})
    app.get("/own")(lambda: PlainTextResponse("x", headers={"Content-Security-Policy": "sandbox"}))

    @app.get("/bug")
    def bug():
        raise RuntimeError("a bug")

    @app.get("/refused")
    def refused():
        raise HttpError(409, "no")

    install_security_headers(app, API_POLICY)
    return app


def test_every_answer_gets_the_headers_and_an_own_policy_is_kept():
    client = TestClient(_app(), raise_server_exceptions=False)
    expected = {name.decode(): value.decode() for name, value in security_headers(API_POLICY)}
    for path, status in (("/ok", 200), ("/refused", 409), ("/bug", 500), ("/nowhere", 404)):
        answer = client.get(path)
        assert answer.status_code == status
        assert {name: answer.headers.get(name) for name in expected} == expected, path
    own = client.get("/own")
    assert own.headers["content-security-policy"] == "sandbox" and own.headers["x-content-type-options"] == "nosniff"
    assert own.headers.get_list("content-security-policy") == ["sandbox"]


def test_the_api_policy_lets_nothing_load_and_no_one_frame():
    assert API_POLICY.startswith("default-src 'none';") and "frame-ancestors 'none'" in API_POLICY
