"""The runs table (``/``, ``/api/runs``) and compare (``/compare?runs=a,b``): each run with its verdict
(`tunesmith.results.verdict.run_verdict`: against the base, the best classic baseline and the constant answer, then
the gate), the model by its real name, and on compare the test rows each run was scored on, ranked only when they
are the same rows.

The handlers are plain functions (not async), like the run pages': FastAPI runs them on worker threads, so reading
run folders never stalls the event loop that streams playground answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request

from tunesmith.json_files import read_jsonl
from tunesmith.models.provision import DEFAULT_MODEL, DEFAULT_MODEL_HUB_ID
from tunesmith.results.comparison import ScoredRows, comparable_test_sets, fingerprint_rows, rank_runs
from tunesmith.results.verdict import Verdict, one_label_answered, run_verdict
from tunesmith.run_dir import RunDir
from tunesmith.ui.pages import Settings, find_run, render
from tunesmith.ui.runs import RunRow, config_differences, find_runs, headline_metrics, raw_config, read_eval, run_row
from tunesmith.web import HttpError

LOW_VALUE_METRICS = ("precision", "recall")
"""Metric columns the runs table drops first on a narrow screen (F1 sums them up); the page's CSS hides them."""


@dataclass(frozen=True)
class TableRow:
    """A run as the runs table and compare show it: its `RunRow`, its verdict and the model by name."""

    run: RunRow
    verdict: Verdict
    verdict_text: str
    """The verdict's cell: its headline, or for a degenerate run what it does ("answers 'ham' to every row")."""
    model: str
    """The model's name as a person knows it: ``default`` is the default model's (SmolLM2-135M-Instruct)."""
    model_title: str
    """The full name (the Hub id, the folder's path) and how the config gives it, for the cell's tooltip."""


def model_label(name: object) -> tuple[str, str]:
    """``(name to show, tooltip)`` of a config's ``model.name``: the default model by its own name, a local folder
    or .gguf file by its last part, a Hub id without its owner (the tooltip keeps the whole)."""
    if not isinstance(name, str) or not name:
        return "–", "model.name is not set"
    if name == DEFAULT_MODEL:
        return DEFAULT_MODEL_HUB_ID.rpartition("/")[2], f"{DEFAULT_MODEL_HUB_ID} (model.name: default)"
    return Path(name).name or name, name


def table_row(name: str, run: RunDir) -> TableRow:
    row = run_row(name, run)
    result = read_eval(run)
    verdict = run_verdict(result, row.gate, row.gate_line)
    text = verdict.headline
    if verdict.level == "degenerate" and (label := one_label_answered(result or {})) is not None:
        text = f"answers {label!r} to every row"
    return TableRow(row, verdict, text, *model_label(row.model))


def scored_rows(run: RunDir, result: dict | None) -> ScoredRows:
    """The test set a run was scored on: eval.json's ``test_set`` fingerprint, or for a run evaluated before
    tunesmith recorded it, the same fingerprint computed from predictions.jsonl."""
    if not result or result.get("num_examples") is None:
        return ScoredRows(None, None)
    fingerprint = result.get("test_set")
    if not isinstance(fingerprint, str):
        fingerprint = fingerprint_rows(read_jsonl(run.predictions)) if run.predictions.is_file() else None
    return ScoredRows(result["num_examples"], fingerprint)


router = APIRouter()


@router.get("/")
def runs_page(request: Request, settings: Settings):
    rows = [table_row(name, run) for name, run in find_runs(settings.runs_dir).items()]
    metric_names = list(dict.fromkeys(key for row in rows for key in row.run.metrics))
    return render(request, "runs.html", rows=rows, metric_names=metric_names, low_value=LOW_VALUE_METRICS,
                  runs_dir=str(settings.runs_dir))


@router.get("/api/runs")
def runs_json(settings: Settings):
    rows = [table_row(name, run) for name, run in find_runs(settings.runs_dir).items()]
    return [vars(row.run) | {"model_name": row.model,
                             "verdict": {"level": row.verdict.level, "headline": row.verdict_text,
                                         "sentences": list(row.verdict.sentences)}} for row in rows]


@router.get("/compare")
def compare_page(request: Request, settings: Settings, runs: str = ""):
    names = [name for name in runs.split(",") if name.strip()]
    if len(names) < 2:
        raise HttpError(400, "compare needs two or more runs: /compare?runs=a,b")
    found = {name: find_run(settings, name) for name in names}
    rows = [table_row(name, run) for name, run in found.items()]
    results = {name: read_eval(run) or {} for name, run in found.items()}
    scored = {name: scored_rows(run, results[name]) for name, run in found.items()}
    comparable, test_sets = comparable_test_sets(scored)
    ranking = rank_runs({name: results[name] for name in names if scored[name].rows is not None}) \
        if comparable else None
    metric_names = list(dict.fromkeys(key for result in results.values()
                                      for key in headline_metrics(result.get("task"), result.get("tuned") or {})))
    differences = config_differences({name: raw_config(run) for name, run in found.items()})
    return render(request, "compare.html", rows=rows, results=results, metric_names=metric_names,
                  differences=differences, scored=scored, comparable=comparable, test_sets=test_sets,
                  ranking=ranking)
