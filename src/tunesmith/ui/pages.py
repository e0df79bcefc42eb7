"""What every page and route of the UI shares: its settings (`Settings`, from the app), the Jinja templates
(autoescaped: every model output and every string from a data file is shown as text), errors as a page (or JSON
under /api/), and finding a run by its name or answering 404."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tunesmith.document import format_value, is_number, plain
from tunesmith.document.render import numeric_columns
from tunesmith.run_dir import RunDir
from tunesmith.ui.runs import find_runs
from tunesmith.web import HttpError

PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class UiSettings:
    """What `tunesmith ui` was started with."""

    runs_dir: Path
    """The folder of run folders (and sweep folders) the UI shows."""
    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None
    """Required on every request when set (`tunesmith.ui.security`)."""
    allowed_hosts: tuple[str, ...] = ()
    """Names the UI answers to besides loopback and ``host`` (`tunesmith.web.AllowedHosts`)."""
    max_tokens: int = 256
    """The most tokens a playground answer may have."""
    max_request_bytes: int = 4 * 2**20
    """Bodies over this are refused (413) before they are read (`tunesmith.web.BodyLimit`)."""
    reviewer_only: bool = False
    """Serve the blind review pages only (`tunesmith.ui.reviewer_only`): no runs, results, files or playground."""


async def settings_of(request: Request) -> UiSettings:
    return request.app.state.settings


Settings = Annotated[UiSettings, Depends(settings_of)]
"""A route's parameter of this type receives the app's settings."""


def _number(value: object, signed: bool = False) -> str:
    """A metric as reports show it (4 decimals); a missing one as –."""
    if value is None:
        return "–"
    return format_value(value, signed=signed) if is_number(value) else plain(value)


def _setting(value: object) -> str:
    """A config value as a person writes it in YAML (``0.0002``, ``8``, ``2e-5``, ``[q_proj, v_proj]``); unset: –."""
    if value is None:
        return "–"
    if isinstance(value, list):
        return "[" + ", ".join(_setting(item) for item in value) + "]"
    if isinstance(value, float):  # as a person writes it: 32.0 → 32, 2e-05 → 2e-5
        text = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        mantissa, exponent = text.split("e") if "e" in text else (text, None)
        return f"{mantissa}e{int(exponent)}" if exponent else text
    return str(value).lower() if isinstance(value, bool) else str(value)


def _model_name(name: object) -> str:
    """A local model folder by its last part (the full path is in the cell's title); a Hub id as it is."""
    return Path(name).name if isinstance(name, str) and name.startswith("/") else _setting(name)


_ENVIRONMENT = jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE / "templates"), autoescape=True,
                                  undefined=jinja2.StrictUndefined)
_ENVIRONMENT.filters["number"] = _number
_ENVIRONMENT.filters["signed"] = lambda value: _number(value, signed=True)
_ENVIRONMENT.filters["setting"] = _setting
_ENVIRONMENT.filters["model_name"] = _model_name
_ENVIRONMENT.filters["numeric_columns"] = numeric_columns  # which columns of a document Table to right-align


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """A page: ``template`` with ``context`` and the session's CSRF token (in a ``<meta>``, for the page's scripts)."""
    html = _ENVIRONMENT.get_template(template).render(csrf=request.state.csrf, reviewer_only=_reviewer_only(request),
                                                      **context)
    return HTMLResponse(html, status_code=status_code)


def _reviewer_only(request: Request) -> bool:
    """Whether the page's navigation leads to the reviews only (`tunesmith.ui.reviewer_only`)."""
    settings = getattr(request.app.state, "settings", None)
    return bool(getattr(settings, "reviewer_only", False))


def render_error(request: Request, error: HttpError) -> Response:
    """An error as JSON ``{"error": message}`` under /api/ (the pages' scripts read it), else as a page."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": error.message}, status_code=error.status)
    if not hasattr(request.state, "csrf"):  # refused before the session was read (the Host check)
        request.state.csrf = ""
    return render(request, "error.html", status_code=error.status, status=error.status, message=error.message)


def find_run(settings: UiSettings, name: str) -> RunDir:
    """The run called ``name`` (a folder under the runs folder, or a sweep's trial); 404 otherwise. Names are
    looked up among the runs found, never joined onto a path, so ``..`` cannot leave the runs folder."""
    run = find_runs(settings.runs_dir).get(name.strip("/"))
    if run is None:
        raise HttpError(404, f"no run called {name!r} under {settings.runs_dir}")
    return run
