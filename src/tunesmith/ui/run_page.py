"""The page of one run (``/runs/<name>``), from the verdict down to the detail: the verdict (`run_verdict`, in the
words of the report's summary), a failure, the gate, the training curves (drawn by static/run.js from
``/api/curves``; a preference run's rewards and preference accuracy beside its loss), the evaluation, the human
review, the data check (the report's data section: its findings first, then its tables, rendered by
`tunesmith.document`) and the config."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response
from markupsafe import Markup

from tunesmith.config.vocabulary import is_preference
from tunesmith.document.render import render_html_blocks
from tunesmith.errors import RunError
from tunesmith.json_files import read_json
from tunesmith.predict.validation_values import STEP_MEASURES, VALIDATION_MEASURES
from tunesmith.report.sections import data_section
from tunesmith.report.summary import verdict_sentences, verdict_title
from tunesmith.results import comparison_table
from tunesmith.results.gate import gate_blocks, gate_state
from tunesmith.review import ReviewStore
from tunesmith.review.stats import review_stats
from tunesmith.review.summary import stats_blocks
from tunesmith.ui.label_pages import queues_of
from tunesmith.ui.pages import UiSettings, find_run, render
from tunesmith.ui.runs import run_row
from tunesmith.ui.runs_table import model_label

WARNING_LEVELS = ("worse", "degenerate")
"""Verdict levels the page shows as a warning banner: a run that should not be used as it is."""


@dataclass(frozen=True)
class Chart:
    """A chart of the run page beside the loss (static/run.js draws it from ``/api/curves`` once it has a point):
    ``steps`` are drawn as lines, ``validations`` dashed with each point marked."""

    id: str
    caption: str
    steps: tuple[str, ...]
    validations: tuple[str, ...]


def _is_accuracy(key: str) -> bool:
    return key.endswith("accuracy")


PREFERENCE_CHARTS = (
    Chart("rewards-chart", "rewards: the chosen and the rejected answers' implicit rewards and their margin (per "
                           "step), the validation margin (dashed, each point marked)",
          tuple(key for key in STEP_MEASURES if not _is_accuracy(key)),
          tuple(key for key in VALIDATION_MEASURES if not _is_accuracy(key))),
    Chart("preference-chart", "preference accuracy (pairs whose chosen answer's reward is above the rejected "
                              "one's): training (per step) and validation (dashed, each point marked)",
          tuple(key for key in STEP_MEASURES if _is_accuracy(key)),
          tuple(key for key in VALIDATION_MEASURES if _is_accuracy(key))),
)
"""What a preference run (`method: dpo | orpo | simpo`) logs besides its loss (`tunesmith.train.preference`): its
rewards, and the share of pairs ranked right. Its validation values are drawn here, not with the validation
metrics."""


def run_page(request: Request, settings: UiSettings, name: str, files: list[str]) -> Response:
    """The page of the run called ``name``; ``files``: the names of the run's files the UI serves (linked)."""
    run = find_run(settings, name)
    result, result_problem = read_or_problem(run.eval_json)
    summary, summary_problem = read_or_problem(run.data_summary)
    train_summary, _ = read_or_problem(run.train_summary)  # only for the data section's truncation line
    failure, failure_problem = read_or_problem(run.failure) if run.failure.is_file() else (None, None)
    state, gate, line = gate_state(run.root)
    row = run_row(name, run)
    judged, sentences = verdict_sentences(result, state, line)
    data = data_section(summary, train_summary, figures=False).blocks
    return render(request, "run.html", row=row, model=model_label(row.model), path=command_path(run.root),
                  config_text=_config_text(run.config_path),
                  verdict=judged, verdict_title=verdict_title(judged), sentences=sentences,
                  warning=judged.level in WARNING_LEVELS,
                  gate=with_kinds(gate_blocks(gate, name, stale=state == "stale")) if gate else None,
                  evaluation=comparison_table(result) if result else None,
                  data=Markup(render_html_blocks(data)), has_summary=summary is not None,
                  problems=[problem for problem in (result_problem, summary_problem, failure_problem) if problem],
                  # One status: a failure older than the evaluation is history, not a banner (`run_status`).
                  failure=failure if row.status == "failed" else None,
                  past_failure=failure if row.status != "failed" else None,
                  files=[file for file in files if (run.root / file).is_file()],
                  review=_review_blocks(run) if ReviewStore.exists(run.root) else None,
                  labeling=bool(queues_of(run)),
                  charts=PREFERENCE_CHARTS if row.method and is_preference(row.method) else ())


def command_path(root: Path) -> str:
    """The run folder as a command line names it: relative to the current folder when it lies inside it (the
    UI's runs folder is often ``runs``), else absolute; quoted for a shell when it must be."""
    resolved = root.resolve()
    try:
        shown = resolved.relative_to(Path.cwd().resolve())
    except ValueError:
        shown = resolved
    return shlex.quote(str(shown))


def _review_blocks(run) -> list[tuple[str, object]]:
    """The review's statistics as `tunesmith review stats` shows them, each block with its kind (for the template).
    They are on the run's page, not the review pages: a reviewer should not see how the models fare."""
    with ReviewStore.open(run.root) as store:
        return with_kinds(stats_blocks(review_stats(store)))


def with_kinds(blocks: list) -> list[tuple[str, object]]:
    """Document blocks as the template's ``blocks`` macro takes them: each with its kind."""
    return [(type(block).__name__.lower(), block) for block in blocks]


def read_or_problem(path) -> tuple[dict | None, str | None]:
    """A run's JSON file, or what is wrong with it: a damaged file is said on the page, which shows the rest."""
    try:
        value = read_json(path)
    except RunError as error:
        return None, str(error)
    return (value, None) if value is None or isinstance(value, dict) else (None, f"{path} does not hold an object")


def _config_text(path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return f"(config.yaml cannot be read: {error})"
