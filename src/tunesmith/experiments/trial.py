"""One trial of a sweep: the sampled settings applied to the sweep's config, a normal run folder trained on the
training and validation splits, its validation values reported to Optuna as it trains (so the pruner can stop
it), and its objective: the metric of the weights training kept as best.

A trial never sees the test split: it trains on splits whose test part is empty, and nothing evaluates it on
test; only the best trial is, after the search (`tunesmith.experiments.sweep.finish`).
"""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import optuna

from tunesmith.config import dump_config, validate_config
from tunesmith.config.schema import RunConfig
from tunesmith.config.search_space import Param, apply_params, resolve
from tunesmith.data.example import Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.splits import load_run_splits
from tunesmith.experiments.study import suggest
from tunesmith.json_files import read_jsonl
from tunesmith.pipeline import create_run
from tunesmith.predict.validation_values import VAL_LOSS
from tunesmith.run_dir import RunDir
from tunesmith.sweep_folder import TRIALS_FOLDER
from tunesmith.train import train


def metric_key(metric: str) -> str:
    """The name of a validation metric in metrics.jsonl (``accuracy`` → ``val_accuracy``)."""
    return metric if metric.startswith("val_") else f"val_{metric}"


def trial_config(base: RunConfig, params: list[Param], values: dict, sweep_dir: Path, number: int) -> RunConfig:
    """The run config of one trial: the sweep's config with the sampled values, its run folder under the sweep's
    ``trials/``, the validation metric recorded when the search needs one, no ``sweep`` section."""
    raw = base.model_dump(mode="json", exclude={"sweep"})  # the search space is no trial's setting (nor copied)
    raw = apply_params(raw, resolve(values, params, raw))
    raw["output"] = {"dir": str(sweep_dir / TRIALS_FOLDER), "name": f"trial-{number:04d}"}
    metric = metric_key(base.sweep.metric)
    if metric != VAL_LOSS:
        raw["train"]["val_metrics"] = sorted({*raw["train"].get("val_metrics", []), metric.removeprefix("val_")})
    return validate_config(raw)


def run_trial(trial: optuna.Trial, base: RunConfig, params: list[Param], sweep_dir: Path, config_path: str | None,
              base_splits: Splits) -> float:
    """Train the trial's run and return its objective; `optuna.TrialPruned` when the pruner stops it.
    ``base_splits`` are the splits of ``base``'s data settings: the trial trains on them unless its sampled
    settings change `data`, when it reads its own."""
    values = {param.key: suggest(trial, param) for param in params}
    config = trial_config(base, params, values, sweep_dir, trial.number)
    run = create_run(config, config_path)
    trial.set_user_attr("run_dir", str(run.root))
    trial.set_user_attr("config", dump_config(config))
    metric = metric_key(base.sweep.metric)

    def report(step: int, validation: dict[str, float]) -> None:
        value = validation.get(metric)
        if value is None:
            return
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"{metric} {value:.4g} at step {step}")

    splits = base_splits if config.data == base.data else load_run_splits(config.data)
    splits = dataclasses.replace(splits, test=[])  # the test split is for the winner only
    try:
        summary = train(config, run, RunInputs(config, splits), on_validation=report)
    finally:
        gc.collect()  # the trial's model and optimizer go before the next trial's load
        # What the trial cost, pruned or not: its training steps' lines in metrics.jsonl.
        steps = [line for line in read_jsonl(run.metrics) if "loss" in line and "tokens" in line]
        trial.set_user_attr("train_tokens", sum(line["tokens"] for line in steps))
        trial.set_user_attr("train_seconds", steps[-1]["elapsed_s"] if steps else 0.0)
    return objective(run, summary, metric)


def objective(run: RunDir, summary: dict, metric: str) -> float:
    """The metric of the best weights (the step with the lowest validation loss: the weights the run keeps and
    exports), read from metrics.jsonl."""
    if metric == VAL_LOSS:
        return summary["best_val_loss"]
    at_best = [line for line in read_jsonl(run.metrics) if line.get("step") == summary["best_step"] and metric in line]
    if not at_best or at_best[-1][metric] is None:
        raise optuna.TrialPruned(f"no {metric} was recorded at the best step {summary['best_step']}")
    return float(at_best[-1][metric])
