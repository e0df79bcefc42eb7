"""Every failure of a request becomes one error, answered in the app's format, and a route's failures (not unknown
paths) are reported to the app."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from tunesmith.errors import ConfigError
from tunesmith.web import HttpError, install_error_handlers


class Body(BaseModel):
    name: str
    count: int = Field(ge=1)


@pytest.fixture()
def app_and_failures():
    failures: list[tuple[str, int]] = []
    app = FastAPI()

    def render(request: Request, error: HttpError) -> JSONResponse:
        return JSONResponse({"status": error.status, "message": error.message, "param": error.param,
                             "code": error.code}, status_code=error.status)

    install_error_handlers(app, render, validation_status=422,
                           on_failure=lambda request, error: failures.append((request.url.path, error.status)))

    @app.post("/things")
    def things(body: Body):
        return {"ok": True}

    @app.get("/refused")
    def refused():
        raise HttpError(409, "already there", param="name", code="duplicate")

    @app.get("/mistake")
    def mistake():
        raise ConfigError("train.steps", "must be positive")

    @app.get("/bug")
    def bug():
        raise KeyError("oops")

    return app, failures


def test_each_failure_is_one_clear_error(app_and_failures):
    app, failures = app_and_failures
    client = TestClient(app, raise_server_exceptions=False)
    bad = client.post("/things", json={"name": "x", "count": 0})
    assert bad.status_code == 422 and bad.json()["message"].startswith("count: ")
    assert bad.json()["param"] == "count"
    several = client.post("/things", json={})
    assert several.json()["message"].endswith("(and 1 more problems)")
    not_json = client.post("/things", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.json()["message"] == "the request body is not valid JSON"
    assert client.get("/refused").json() == {"status": 409, "message": "already there", "param": "name",
                                             "code": "duplicate"}
    assert client.get("/mistake").status_code == 400
    assert client.get("/mistake").json()["message"] == "config: train.steps: must be positive"
    crash = client.get("/bug")
    assert crash.status_code == 500 and crash.json()["message"] == "internal error: KeyError"
    assert client.get("/nowhere").status_code == 404 and client.delete("/refused").status_code == 405
    assert ("/nowhere", 404) not in failures and ("/refused", 405) not in failures  # no route was asked
    assert ("/things", 422) in failures and ("/refused", 409) in failures and ("/bug", 500) in failures
