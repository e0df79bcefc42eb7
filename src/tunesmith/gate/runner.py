"""`tunesmith gate`: a run's evaluation judged (`tunesmith.gate.checks`), gate.json written.

The comparisons pair the tuned model's answer to each test row (predictions.jsonl) with the base model's, the
best classic baseline's (predictions.jsonl's ``baseline_predictions``; a run evaluated before they were written
there has its baselines trained again, in seconds, and checked against the scores eval.json holds) and, with
``against``, the run in service's: its own predictions.jsonl when it answered the same test rows, else its model
evaluated on this run's test rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from rich.console import Console

import tunesmith.gate.checks as checks
import tunesmith.gate.general as general
from tunesmith.config.gate_section import GateConfig
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import BASELINES, MINIMIZED, TASK_METRICS
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import ConfigError, RunError
from tunesmith.evaluate.baselines import run_baselines
from tunesmith.evaluate.preference import preference_method, read_pair_rows, task_inputs
from tunesmith.evaluate.runner import evaluate_previous
from tunesmith.export import write_model_cards
from tunesmith.gate.checks import Paired
from tunesmith.gate.stats import metric_statistics
from tunesmith.json_files import read_json, read_jsonl, write_json
from tunesmith.models import load_tuned_model
from tunesmith.predict.answers import answer, references_of, regression_target, truth_of
from tunesmith.results import best_baseline
from tunesmith.results.gate import GATE_VERSION, file_sha256
from tunesmith.run_dir import RunDir, locked
from tunesmith.tracking import gate_numbers, log_stage

_console = Console(stderr=True)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
"""Files counted as a checkpoint's weights when the run was not exported."""


@locked
def run_gate(config: RunConfig, run: RunDir, inputs: RunInputs, against: RunDir | None = None) -> dict:
    """Judge a run's evaluation (eval.json, predictions.jsonl) against `config.gate` (its defaults when the run has
    no `gate:` section); ``against`` is the run in service. Writes gate.json atomically and returns its content."""
    started = time.perf_counter()
    judged = _set_up(config, run, inputs)
    result = _comparisons(judged, run, against) + _other_checks(judged, run)
    gate = _gate_record(judged, run, against, result, time.perf_counter() - started)
    write_json(run.gate_json, gate)
    log_stage(run, config, gate_numbers(gate))  # train.report_to's trackers
    write_model_cards(config, run)  # an exported run's cards say the gate's result from now on
    return gate


@dataclass(frozen=True)
class _Judged:
    """What the gate judges: a run's evaluation, its test rows with each model's answer, the metric the comparisons
    use and the gate's settings."""

    settings: GateConfig
    config: RunConfig
    """The settings the task was scored with: the run's own, or its `model.init_from` run's (`task_inputs`)."""
    inputs: RunInputs
    init_from: dict | None
    evaluation: dict
    """eval.json's content."""
    eval_sha256: str | None
    rows: list[dict]
    """predictions.jsonl's lines, one per test row in order."""
    metric: str
    truths: list
    """Each test row's truth, as `metric_statistics` takes it."""
    unleaked: list[int] | None
    """The test rows not leaked from train; None when none leaked (or leakage was not checked)."""

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in MINIMIZED

    def compare(self, name: str, other: str | None, described: str, predictions: list[str] | None,
                missing: str) -> dict:
        """The comparison check ``name`` of the tuned model's answers with ``predictions`` (``other``'s; None:
        failed, saying ``missing``, or skipped when there is no other)."""
        requirement = getattr(self.settings, name)
        if requirement == "off" or predictions is None:
            return checks.check(name, "skipped" if requirement == "off" or other is None else "failed",
                                f"gate.{name} is off" if requirement == "off" else missing,
                                requirement=requirement, other=other)
        return checks.comparison_check(name, other, described, self._paired(predictions), requirement, self.metric,
                                       self.higher_is_better, self.settings)

    def _paired(self, others: list[str]) -> dict[str, Paired | None]:
        task = self.inputs.task
        tuned = [row["tuned_prediction"] for row in self.rows]
        every = Paired(metric_statistics(self.metric, self.truths, tuned, task.labels),
                       metric_statistics(self.metric, self.truths, others, task.labels),
                       *(_right(self.truths, answers) if task.name == "classification" else None
                         for answers in (tuned, others)))
        return {"all": every, "unleaked": None if self.unleaked is None else every.subset(self.unleaked)}


def _set_up(config: RunConfig, run: RunDir, inputs: RunInputs) -> _Judged:
    """The run's evaluation and test rows, checked to belong together, and the metric the gate judges them on."""
    settings = config.gate or GateConfig()
    evaluation = read_json(run.eval_json)
    if evaluation is None:
        raise RunError(f"{run.root} has no evaluation to gate", f"run `tunesmith eval {run.root}` first")
    eval_sha256 = file_sha256(run.eval_json)
    # A preference run with model.init_from was scored on that run's test rows, task and settings: so is it gated.
    scoring, inputs, init_from = task_inputs(config, inputs)
    rows = _test_rows(run, inputs)
    metric = _gate_metric(settings, inputs.task.name)
    truths = [_truth(inputs.task.name, example) for example in inputs.splits.test]
    return _Judged(settings, scoring, inputs, init_from, evaluation, eval_sha256, rows, metric, truths,
                   _unleaked_rows(evaluation, rows))


def _comparisons(judged: _Judged, run: RunDir, against: RunDir | None) -> list[dict]:
    """The tuned model against its base (or the init_from run's model), a preference run's ranking of its pairs
    against its reference's, the best classic baseline and, with ``against``, the run in service."""
    settings, config, init_from, rows = judged.settings, judged.config, judged.init_from, judged.rows
    base = [row["base_prediction"] for row in rows] if judged.evaluation.get("base") is not None else None
    not_evaluated = ("the base model was not evaluated: run `tunesmith eval RUN` with evaluate.compare_base true, or "
                     "set gate.{} off")
    if init_from is None or preference_method(config) is None:
        described = f"the {init_from['label']}" if init_from else "the base"
        result = [judged.compare("against_base", "base", described, base, not_evaluated.format("against_base:"))]
    else:
        result = [checks.check("against_base", "skipped", f"model.init_from: the base is the {init_from['label']}, "
                               "judged by gate.against_init_from", requirement=settings.against_base, other="base"),
                  judged.compare("against_init_from", "base", f"the {init_from['label']}", base,
                                 not_evaluated.format("against_init_from:"))]
    if preference_method(config) is not None:
        result.append(checks.preference_check(judged.evaluation.get("preference")
                                              or {"skipped": "eval.json has no preference block"},
                                              read_pair_rows(run), settings))
    metric = judged.metric
    best = best_baseline(judged.evaluation, metric)
    baseline_answers = (_baseline_predictions(config, rows, judged.inputs, judged.evaluation, best[0], metric)
                        if best else None)
    result.append(judged.compare("against_baseline", best[0] if best else None,
                                 BASELINES.get(best[0], (None, best[0]))[1] if best else "",
                                 baseline_answers, f"no classic baseline has a {metric} score (evaluate.baselines)"))
    if against is not None:
        name = against.root.resolve().name
        result.append(judged.compare("against_previous", name, f"{name} (in service)",
                                     _previous_predictions(config, rows, judged.inputs, against), ""))
    return result


def _other_checks(judged: _Judged, run: RunDir) -> list[dict]:
    """Calibration, valid answers, general ability, latency and export size."""
    settings, config, inputs, task = judged.settings, judged.config, judged.inputs, judged.inputs.task
    answers = [row["tuned_prediction"] for row in judged.rows]
    return [
        checks.calibration_check(task.name, judged.evaluation.get("calibration"), settings),
        checks.valid_output_check(task.name, task.labels, answers, [row["location"] for row in judged.rows],
                                  config.evaluate.output_schema, settings),
        checks.general_check(general.general_ability(config, run) if settings.general_rows else None, settings),
        checks.latency_check(*_latency(config, run, inputs, settings.latency_rows), settings),
        checks.export_size_check(*_export_sizes(run), settings),
    ]


def _gate_record(judged: _Judged, run: RunDir, against: RunDir | None, result: list[dict], seconds: float) -> dict:
    """gate.json's content."""
    settings = judged.settings
    return {
        "version": GATE_VERSION, "passed": not any(check["status"] == "failed" for check in result),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run": run.root.resolve().name,
        "against": None if against is None else {"run": against.root.resolve().name,
                                                 "path": str(against.root.resolve())},
        "eval_sha256": judged.eval_sha256, "task": judged.inputs.task.name, "metric": judged.metric,
        "higher_is_better": judged.higher_is_better,
        "confidence": settings.confidence, "resamples": settings.resamples, "seed": settings.seed,
        "rows": {"all": len(judged.rows), "unleaked": None if judged.unleaked is None else len(judged.unleaked)},
        "seconds": round(seconds, 2), "checks": result,
    }


def format_gate(gate: dict) -> str:
    """gate.json as a table for the terminal: one line per check (status, name, reason), then the verdict."""
    width = max(len(check["name"]) for check in gate["checks"])
    lines = [f"{check['status']:<8}  {check['name']:<{width}}  {check['reason']}" for check in gate["checks"]]
    unleaked = gate["rows"]["unleaked"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    lines.append(f"gate {verdict}: {gate['run']} on {gate['rows']['all']:,} test rows"
                 + (f" ({unleaked:,} unleaked)" if unleaked is not None else "")
                 + f", {gate['metric']}, {gate['confidence']:.0%} intervals, {gate['seconds']:.1f}s")
    return "\n".join(lines)


def _gate_metric(settings: GateConfig, task: str) -> str:
    if settings.metric is None:
        return TASK_METRICS[task][0]
    if settings.metric not in TASK_METRICS[task]:
        raise ConfigError("gate.metric", f"{settings.metric!r} is not a {task} metric",
                          f"use one of {', '.join(TASK_METRICS[task])}")
    return settings.metric


def _truth(task: str, example):
    if task == "classification":
        return truth_of(example)
    if task == "regression":
        return regression_target(example)
    return references_of(example)


def _right(truths: list, answers: list[str]) -> np.ndarray:
    return np.asarray([truth == answer for truth, answer in zip(truths, answers)], dtype=bool)


def _test_rows(run: RunDir, inputs: RunInputs) -> list[dict]:
    """predictions.jsonl, checked to hold the run's test rows in order (so its answers pair with the examples)."""
    rows = read_jsonl(run.predictions)
    test = inputs.splits.test
    if [row.get("location") for row in rows] != [example.location for example in test]:
        raise RunError(f"{run.predictions} does not hold the test rows of the run's data ({len(rows)} rows, the "
                       f"test split has {len(test)}): the data changed since the evaluation",
                       f"run `tunesmith eval {run.root}` again")
    return rows


def _unleaked_rows(evaluation: dict, rows: list[dict]) -> list[int] | None:
    """Indices of the test rows not leaked from train; None when none leaked, or leakage was not checked."""
    leakage = evaluation.get("leakage") or {}
    leaked = set(leakage.get("locations") or [])
    if not leakage.get("checked") or not leaked:
        return None
    keep = [index for index, row in enumerate(rows) if row["location"] not in leaked]
    return keep or None


def _baseline_predictions(config: RunConfig, rows: list[dict], inputs: RunInputs, evaluation: dict, name: str,
                          metric: str) -> list[str]:
    """The baseline's answer to each test row: predictions.jsonl's, else the baseline trained again (seeded by
    `train.seed` as evaluation trained it) and checked to score what eval.json says it scored."""
    if all(name in (row.get("baseline_predictions") or {}) for row in rows):
        return [row["baseline_predictions"][name] for row in rows]
    task = inputs.task
    _console.print(f"training the baseline {name} again: predictions.jsonl predates per-row baseline answers")
    [trained] = run_baselines([name], task, inputs.splits, config.data, config.train.seed)
    if trained.predictions is None:
        raise RunError(f"the baseline {name} could not be trained again: {trained.skipped}",
                       "run `tunesmith eval RUN` again")
    truths = [_truth(task.name, example) for example in inputs.splits.test]
    scored = metric_statistics(metric, truths, trained.predictions, task.labels).metric()
    recorded = evaluation["baselines"][name][metric]
    if not np.isclose(scored, recorded, rtol=1e-9, atol=1e-12):
        raise RunError(f"the baseline {name} trained again scores {metric} {scored:.4f}, the evaluation recorded "
                       f"{recorded:.4f}: the data changed since", "run `tunesmith eval RUN` again")
    return trained.predictions


def _previous_predictions(config: RunConfig, rows: list[dict], inputs: RunInputs, previous: RunDir) -> list[str]:
    """The run in service's answer to each of this run's test rows: from its predictions.jsonl when it answered
    the same rows (location, prompt and reference alike), else its model evaluated on them now."""
    previous.config()  # fails clearly when it is not a run folder
    theirs = read_jsonl(previous.predictions)

    def identity(row: dict) -> tuple:
        return row.get("location"), row.get("prompt"), row.get("reference")

    if [identity(row) for row in theirs] == [identity(row) for row in rows]:
        return [row["tuned_prediction"] for row in theirs]
    _console.print(f"evaluating {previous.root.resolve().name} on this run's test rows (its own differ)")
    _, records = evaluate_previous(config, previous, inputs)
    return [record["prediction"] for record in records]


def _latency(config: RunConfig, run: RunDir, inputs: RunInputs, rows: int) -> tuple[list[float], str | None]:
    """Seconds of each of the first ``rows`` test rows answered alone, through evaluation's answer path, after one
    unmeasured answer (the first call pays for lazy initialization); and the device."""
    examples = inputs.splits.test[:rows]
    if not examples:
        return [], None
    model, tokenizer = load_tuned_model(run.root, merge=True)
    device = str(next(model.parameters()).device)
    answer(model, tokenizer, examples[:1], inputs.task, config.evaluate)
    seconds = []
    for example in examples:
        started = time.perf_counter()
        answer(model, tokenizer, [example], inputs.task, config.evaluate)
        seconds.append(time.perf_counter() - started)
    return seconds, device


def _export_sizes(run: RunDir) -> tuple[dict[str, float], str]:
    """MiB of adapter/ and merged/ when the run was exported (the adapter is what serving an adapter run loads
    beside a base it shares), else of the best checkpoint's weight files; and which of them the check judges."""
    sizes = {folder.name: _mib(folder.rglob("*")) for folder in (run.adapter, run.merged) if folder.is_dir()}
    if sizes:
        return sizes, "adapter" if "adapter" in sizes else "merged"
    best = run.best_weights()
    name = str(best.relative_to(run.root))
    return {name: _mib(path for path in best.rglob("*") if path.suffix in WEIGHT_SUFFIXES)}, name


def _mib(paths) -> float:
    return round(sum(path.stat().st_size for path in paths if path.is_file()) / 2**20, 3)

