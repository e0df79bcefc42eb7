"""A run's evaluation (the pipeline's evaluate stage): the tuned model, its base and the classic baselines on the
test split, scored on every test row and on the rows not leaked from train; writes ``eval.json`` and
``predictions.jsonl``."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import torch
from rich.console import Console

from tunesmith import distributed
from tunesmith.config.schema import RunConfig
from tunesmith.data.check.data_report import leaked_rows
from tunesmith.data.example import Example, Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.task import Task
from tunesmith.document import is_number
from tunesmith.errors import ConfigError, DataError, RunError
from tunesmith.evaluate.baselines import BaselineResult, baseline_scores, run_baselines
from tunesmith.evaluate.cache import evaluation_key, key_ingredients, load_evaluation, store_evaluation
from tunesmith.evaluate.preference import evaluate_preference, preference_method, task_inputs
from tunesmith.evaluate.reference import (
    RunReference,
    build_reference,
    novelty_unavailable,
    skipped_calibration,
    write_run_reference,
)
from tunesmith.evaluate.tasks import evaluate_model, select_metrics
from tunesmith.json_files import read_json, read_jsonl, write_json, write_jsonl
from tunesmith.models import load_base_model, load_tokenizer, load_tuned_model
from tunesmith.models.init_from import check_init_from
from tunesmith.predict.answers import task_metrics
from tunesmith.results.comparison import fingerprint_rows
from tunesmith.run_dir import RunDir, locked
from tunesmith.tracking import eval_numbers, log_stage

_console = Console(stderr=True)


@locked
def evaluate_run(config: RunConfig, run: RunDir, inputs: RunInputs, include_base: bool | None = None) -> dict:
    """Evaluate a run's tuned model (and its base model) on the test split of ``inputs`` (the run's splits and
    task); write eval.json and predictions.jsonl.

    ``include_base`` defaults to ``evaluate.compare_base``. Returns the eval.json content: the task, the
    metrics of each model and their deltas on every test row, and under ``unleaked`` the same on the test rows
    the data check did not find in train (``leakage`` says which, or why it could not be checked).
    ``base_from_cache`` says whether the base model's results were reused from the evaluation cache
    (`tunesmith.evaluate.cache`), and ``base_cache`` names that entry (its key and when it was computed).
    ``baselines`` holds each `evaluate.baselines` model's metrics with its ``train_seconds`` and
    ``predict_seconds`` (`tunesmith.evaluate.baselines`; trained again at every evaluation, in seconds).
    ``calibration`` holds the temperature fitted on the validation rows and the test rows' ECE, Brier score and
    reliability bins before and after it, or why there are none (`tunesmith.evaluate.reference`, which also writes
    reference.json and the novelty index unless `evaluate.reference` is off).

    A preference run (`method: dpo | orpo | simpo`, `tunesmith.evaluate.preference`) also holds ``preference``: its
    test pairs ranked by the tuned model and by its reference; with `model.init_from` the task block is measured on
    that run's test rows with its task and settings, base = its model (``init_from`` names it, ``columns`` labels it).

    ``test_set`` names the test rows (`tunesmith.results.comparison.fingerprint_rows` of their prompts and
    references): runs compared side by side are ranked only when they were scored on the same rows.

    ``base_key`` is the base evaluation's cache key (`tunesmith.evaluate.cache.evaluation_key`: the base model, the
    test rows, the scoring settings), when `evaluate.cache_base` computed one. Without the base (``--no-base``) the
    previous eval.json's base results are kept when their key is this evaluation's (the same base model on the same
    test rows), and ``base_kept`` says when they were computed; otherwise ``base_skipped`` says why there are none.
    """
    setup = _set_up(config, run, inputs, include_base)
    preference = _score_preference(setup, run)
    baselines = _baselines(setup.config, setup.inputs.splits, setup.inputs.task)
    base = _score_base(setup, run)  # before the tuned model, which brings its own copy of the base
    tuned = _score_tuned(setup, run)
    result = _result(setup, base, tuned, baselines, preference)
    _record(setup, run, result, base, tuned, baselines)
    return result


@dataclass(frozen=True)
class _Setup:
    """What an evaluation measures against what, settled before any model loads."""

    own_config: RunConfig
    """The run's own settings (its trackers, its preference pairs)."""
    config: RunConfig
    """The settings the task is scored with: the run's own, or its `model.init_from` run's task settings."""
    inputs: RunInputs
    """The test rows and task scored: the run's own, or its init_from run's (`task_inputs`)."""
    init_from: dict | None
    """eval.json's ``init_from`` record; None without `model.init_from`."""
    include_base: bool
    preference_pairs: list[Example] | None
    """A preference run's test pairs, ranked by the tuned model and its reference; None for other runs."""
    novelty_skipped: str | None
    """Why the reference will hold no novelty index (None: it will, or `evaluate.reference` is off)."""


@dataclass(frozen=True)
class _BaseScores:
    """The base model's test scores: evaluated now, reused from the cache or kept from the last evaluation
    (``note``: eval.json's ``base_kept`` or ``base_skipped``), or none."""

    metrics: dict | None = None
    rows: list[dict] | None = None
    key: str | None = None
    cache: dict | None = None
    from_cache: bool = False
    note: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _TunedScores:
    metrics: dict
    rows: list[dict]
    reference: RunReference | None
    """Rank 0's reference of the run; None on other ranks and with `evaluate.reference` off."""
    calibration: dict


def _set_up(config: RunConfig, run: RunDir, inputs: RunInputs, include_base: bool | None) -> _Setup:
    """Start the job's processes and settle what is measured against what, failing on what would otherwise fail
    after minutes of model time: no best weights, a changed init_from run, no test rows, an unusable novelty model."""
    distributed.start(config.distributed.timeout_minutes)
    run.best_weights()  # fail before spending minutes on the base model
    check_init_from(run, config)  # and its init_from run's weights unchanged (they are its base model)
    distributed.barrier()  # rank 0 finished any interrupted replacement of the best weights
    preference_pairs = inputs.splits.test if preference_method(config) else None
    scoring, task_rows, init_from = task_inputs(config, inputs)  # fails before any model loads
    splits = task_rows.splits
    if not splits.test:
        raise DataError(
            splits.files.get("test", "data"), None, "the test split has no rows",
            "give data.test or set data.split.test above 0",
        )
    novelty_skipped = novelty_unavailable(scoring) if scoring.evaluate.reference else None  # a bad model: fail now
    return _Setup(config, scoring, task_rows, init_from,
                  config.evaluate.compare_base if include_base is None else include_base, preference_pairs,
                  novelty_skipped)


def _score_preference(setup: _Setup, run: RunDir) -> dict | None:
    """eval.json's ``preference`` block of a preference run (`evaluate_preference`); None for other runs."""
    if setup.preference_pairs is None:
        return None
    preference = evaluate_preference(setup.own_config, run, setup.preference_pairs)
    _free_memory()
    return preference


def _score_base(setup: _Setup, run: RunDir) -> _BaseScores:
    config, examples, task = setup.config, setup.inputs.splits.test, setup.inputs.task
    if setup.include_base:
        metrics, rows, cache, from_cache, key = _base_evaluation(config, examples, task)
        _free_memory()
        return _BaseScores(metrics, rows, key, cache, from_cache)
    metrics, rows, key, note = distributed.broadcast(
        kept_base(config, run, examples, task) if distributed.is_main() else None)
    return _BaseScores(metrics, rows, key, note=note)


def _score_tuned(setup: _Setup, run: RunDir) -> _TunedScores:
    """The tuned model's test scores, then (`evaluate.reference`) the run's reference and calibration from it."""
    config, splits, task = setup.config, setup.inputs.splits, setup.inputs.task
    model, tokenizer = load_tuned_model(run.root, merge=True)
    metrics, rows = _timed_evaluation("tuned", model, tokenizer, splits.test, task, config,
                                      confidence=config.evaluate.reference)
    reference = None
    if config.evaluate.reference:
        reference = build_reference(config, model, tokenizer, splits, task, rows, setup.novelty_skipped)
        # Every process computed the same calibration; rank 0 alone holds the reference.
        calibration = distributed.broadcast(reference.calibration if reference else None)
    else:
        calibration = skipped_calibration("evaluate.reference is false")
    del model
    _free_memory()
    return _TunedScores(metrics, rows, reference, calibration)


def _result(setup: _Setup, base: _BaseScores, tuned: _TunedScores, baselines: list[BaselineResult],
            preference: dict | None) -> dict:
    """eval.json's content (`evaluate_run` says what each key holds)."""
    splits, task, init_from = setup.inputs.splits, setup.inputs.task, setup.init_from
    leakage, unleaked = _unleaked_scores(setup.config, splits, task, base.rows, tuned.rows, baselines)
    return {
        "task": task.name,
        "labels": task.labels,
        "num_examples": len(splits.test),
        "test_set": fingerprint_rows(tuned.rows),
        "base": base.metrics,
        "tuned": tuned.metrics,
        "delta": metric_deltas(base.metrics, tuned.metrics),
        "baselines": {baseline.name: baseline_scores(baseline, task, splits.test) for baseline in baselines},
        "base_from_cache": base.from_cache,
        "base_cache": base.cache,
        "base_key": base.key,
        **base.note,
        "leakage": leakage,
        "unleaked": unleaked,
        "calibration": tuned.calibration,
        **({"init_from": init_from, "columns": [init_from["label"], "tuned"]} if init_from else {}),
        **({"preference": preference} if preference is not None else {}),
    }


def _record(setup: _Setup, run: RunDir, result: dict, base: _BaseScores, tuned: _TunedScores,
            baselines: list[BaselineResult]) -> None:
    """Write eval.json, predictions.jsonl and the reference (rank 0: every process evaluated its share and holds
    every row's prediction), and tell the run's trackers."""
    if distributed.is_main():
        write_run_reference(run, tuned.reference)
        _say_reference(tuned.reference, tuned.calibration)
        write_json(run.eval_json, result)
        write_jsonl(run.predictions, merge_predictions(base.rows, tuned.rows, baselines))
        log_stage(run, setup.own_config, eval_numbers(result))  # train.report_to's trackers
    distributed.barrier()  # the run folder is whole before any process goes on


def evaluate_against(config: RunConfig, run: RunDir, previous: RunDir, inputs: RunInputs) -> dict:
    """A previous run's tuned model scored on this run's test split, beside this run's own tuned model: what the
    retrain (more data, users' feedback) changed, measured on the same rows. The previous model sees the rows as
    this run's data settings render them, through its own tokenizer and chat template. Writes nothing; returns
    eval.json's shape with the previous run in place of the base model (``against`` names it), and this run's
    baselines, which were scored on the same rows."""
    current = read_json(run.eval_json) or evaluate_run(config, run, inputs, include_base=False)
    config, inputs, _ = task_inputs(config, inputs)  # a preference run: the init_from run's task and test rows
    splits, task = inputs.splits, inputs.task
    if task.name != current["task"]:
        raise ConfigError("evaluate.task", f"{run.root} was evaluated as {current['task']}, its data now reads as "
                          f"{task.name}", f"run `tunesmith eval {run.root}` again")
    metrics, _ = evaluate_previous(config, previous, inputs)
    return {"task": task.name, "labels": task.labels, "num_examples": len(splits.test), "base": metrics,
            "tuned": current["tuned"], "delta": metric_deltas(metrics, current["tuned"]),
            "baselines": current.get("baselines") or {}, "against": previous.root.resolve().name,
            "columns": [previous.root.resolve().name, run.root.resolve().name]}


def evaluate_previous(config: RunConfig, previous: RunDir, inputs: RunInputs) -> tuple[dict, list[dict]]:
    """A previous run's tuned model on this run's test split, as this run's data settings render the rows: its
    metrics and one prediction record per test row (`evaluate_model`'s). Writes nothing."""
    model, tokenizer = load_tuned_model(previous.root, merge=True)
    result = _timed_evaluation("previous run's", model, tokenizer, inputs.splits.test, inputs.task, config)
    del model
    _free_memory()
    return result


def _unleaked_scores(config: RunConfig, splits: Splits, task: Task, base_rows: list[dict] | None,
                     tuned_rows: list[dict], baselines: list[BaselineResult]) -> tuple[dict, dict | None]:
    """``(leakage, unleaked)`` of eval.json. The unleaked scores are the task metrics of the same predictions
    (the models' and the baselines') on the test rows that are not leaked (the loss is left out: it is not kept
    per row); None when no row is leaked, or when leakage cannot be checked."""
    leaked = leaked_rows(splits, "test", config.data.check.near_duplicate_threshold)
    if leaked is None:
        return {"checked": False, "reason": "data.streaming: the training rows are not held in memory"}, None
    leakage = {"checked": True, "leaked_rows": len(leaked), "locations": sorted(leaked)}
    keep = [index for index, example in enumerate(splits.test) if example.location not in leaked]
    if not leaked or not keep:
        return leakage, None

    def scores(rows: list[dict] | None) -> dict | None:
        if rows is None:
            return None
        examples: list[Example] = [splits.test[index] for index in keep]
        metrics = task_metrics(task, examples, [rows[index]["prediction"] for index in keep])
        return select_metrics(metrics, task)

    base, tuned = scores(base_rows), scores(tuned_rows)
    others = {baseline.name: baseline_scores(baseline, task, splits.test, keep, timings=False)
              for baseline in baselines}
    return leakage, {"num_examples": len(keep), "base": base, "tuned": tuned, "delta": metric_deltas(base, tuned),
                     "baselines": others}


def metric_deltas(base: dict | None, tuned: dict) -> dict:
    """``tuned - base`` for every scalar metric both models have a number for."""
    if base is None:
        return {}
    return {name: value - base[name] for name, value in tuned.items() if is_number(value) and is_number(base.get(name))}


def merge_predictions(base_rows: list[dict] | None, tuned_rows: list[dict],
                      baselines: list[BaselineResult] = ()) -> list[dict]:
    """One line per test row with both models' predictions side by side (base fields ``None`` without base), and
    under ``baseline_predictions`` each trained baseline's prediction of the row (``{name: prediction}``; the
    gate pairs them with the tuned model's row by row)."""
    trained = [baseline for baseline in baselines if baseline.predictions is not None]
    merged = []
    for index, tuned in enumerate(tuned_rows):
        base = base_rows[index] if base_rows is not None else {}
        line = {
            "location": tuned["location"], "prompt": tuned["prompt"], "reference": tuned["reference"],
            "base_prediction": base.get("prediction"), "tuned_prediction": tuned["prediction"],
            "base_correct": base.get("correct"), "tuned_correct": tuned["correct"],
        }
        if "scores" in tuned:
            line["base_scores"] = base.get("scores")
            line["tuned_scores"] = tuned["scores"]
        if trained:
            line["baseline_predictions"] = {baseline.name: baseline.predictions[index] for baseline in trained}
        merged.append(line)
    return merged


def _baselines(config: RunConfig, splits: Splits, task: Task) -> list[BaselineResult]:
    """The `evaluate.baselines` of the task, trained and run by rank 0 alone (seconds of CPU, no model) and sent to
    the other processes, so every process writes and returns the same result."""
    names = config.evaluate.baselines_for(task.name)  # on every rank: a ConfigError must stop them all
    results = None
    if distributed.is_main():
        if names:
            _console.print(f"training the baselines {', '.join(names)} on {len(splits.train)} training rows")
        results = run_baselines(names, task, splits, config.data, config.train.seed)
        for result in results:
            if result.skipped:
                _console.print(f"  baseline {result.name} skipped: {result.skipped}")
    return distributed.broadcast(results)


def _base_evaluation(config: RunConfig, examples: list[Example], task: Task):
    """The base model's metrics and prediction records; the cache entry they came from or were kept in (its key
    and when it was computed; None when `evaluate.cache_base` is off or the cache cannot be written); and whether
    they came from it. On a cache hit the base model is not loaded."""
    tokenizer = load_tokenizer(config.model)
    key = ingredients = cached = None
    if config.evaluate.cache_base:
        # Rank 0 reads the cache and tells the others, so every process of a job takes the same branch.
        if distributed.is_main():
            ingredients = key_ingredients(config, tokenizer, examples, task)
            key = evaluation_key(ingredients)
            cached = load_evaluation(key, examples)
        key, cached = distributed.broadcast((key, cached))
        if cached is not None:
            if distributed.is_main():
                _console.print(f"base model: reusing its evaluation from the cache (key {key}, computed "
                               f"{cached.computed_at}; evaluate.cache_base: false evaluates it again)")
            return cached.metrics, cached.rows, cached.record(), True, key
    model, _ = load_base_model(config.model)  # with model.init_from: that run's model
    metrics, rows = _timed_evaluation("base", model, tokenizer, examples, task, config)
    stored = store_evaluation(key, ingredients, metrics, rows) if key and distributed.is_main() else None
    record = distributed.broadcast(stored.record() if stored else None)
    return metrics, rows, record, False, key


def kept_base(config: RunConfig, run: RunDir, examples: list[Example],
              task: Task) -> tuple[dict | None, list[dict] | None, str | None, dict]:
    """Without the base model (``--no-base``): ``(metrics, prediction records, key, note)`` of the base results the
    run's previous eval.json holds, when their key is this evaluation's (the same base model, test rows and scoring
    settings) and predictions.jsonl still holds their rows; the note (``base_kept``) says so and when they were
    computed. Else no base, and the note (``base_skipped``) says why, so eval.json never reads as if the base had
    not been compared before."""
    try:
        previous = read_json(run.eval_json) or {}
    except RunError:
        previous = {}  # a damaged eval.json: nothing to keep
    if not isinstance(previous, dict) or not isinstance(previous.get("base"), dict):
        return None, None, None, {"base_skipped": "not evaluated (--no-base)"}
    previous_key = previous.get("base_key") or (previous.get("base_cache") or {}).get("key")
    key = evaluation_key(key_ingredients(config, load_tokenizer(config.model), examples, task)) \
        if previous_key else None
    rows = _previous_base_rows(run, examples) if key is not None and key == previous_key else None
    if rows is None:
        why = ("nothing says which base model and test rows they were computed on (evaluate.cache_base was off)"
               if not previous_key else "they were computed on other test rows, settings or base model")
        return None, None, None, {"base_skipped": "not evaluated (--no-base); the previous evaluation's base results "
                                                  f"were dropped: {why}"}
    computed_at = ((previous.get("base_kept") or {}).get("computed_at")
                   or (previous.get("base_cache") or {}).get("computed_at"))
    _console.print("base model: not evaluated (--no-base); keeping the previous evaluation's base results, computed "
                   f"on these test rows with this base model (key {key})")
    return previous["base"], rows, key, {"base_kept": {"reason": "--no-base: the base model was not evaluated again; "
                                                                 "these are the previous evaluation's results on the "
                                                                 "same test rows with the same base model",
                                                       "computed_at": computed_at}}


def _previous_base_rows(run: RunDir, examples: list[Example]) -> list[dict] | None:
    """The base model's prediction records, rebuilt from predictions.jsonl, when it holds one per test row in order."""
    try:
        lines = read_jsonl(run.predictions)
    except (RunError, OSError, UnicodeDecodeError):
        return None
    if len(lines) != len(examples) or any(
            not isinstance(line, dict) or line.get("location") != example.location or "base_prediction" not in line
            for line, example in zip(lines, examples)):
        return None
    return [{"location": line["location"], "prompt": line["prompt"], "reference": line["reference"],
             "prediction": line["base_prediction"], "correct": line["base_correct"],
             **({"scores": line["base_scores"]} if "base_scores" in line else {})} for line in lines]


def _timed_evaluation(which: str, model, tokenizer, examples: list[Example], task: Task, config: RunConfig,
                      confidence: bool = False):
    say = _console.print if distributed.is_main() else (lambda text: None)
    processes = f", {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
    say(f"evaluating the {which} model on {len(examples)} test rows ({task.name}{processes})")
    started = time.perf_counter()
    metrics, rows = evaluate_model(model, tokenizer, examples, task, config.evaluate, config.data.max_length,
                                   confidence)
    say(f"  {which} model done in {time.perf_counter() - started:.1f}s")
    return metrics, rows


def _say_reference(built, calibration: dict) -> None:
    if built is None:
        _console.print("evaluate.reference is false: the run keeps no reference.json or novelty/")
        return
    reference = built.reference
    line = f"reference: {reference.rows} held-out rows ({reference.sources})"
    if "temperature" in calibration:
        line += (f"; temperature {calibration['temperature']:.3g} takes the test ECE "
                 f"{calibration['before']['ece']:.4f} -> {calibration['after']['ece']:.4f}")
    _console.print(line + (f"; novelty skipped: {reference.novelty_skipped}" if reference.novelty_skipped else ""))


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
