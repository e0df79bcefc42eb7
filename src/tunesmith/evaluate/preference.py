"""Evaluation of a preference run (`method: dpo | orpo | simpo`): how it ranks the held-out pairs, and what the task
it started from kept.

Two measurements, written into the run's eval.json:

- ``preference``: on the run's test split of pairs, the tuned model's preference accuracy (the share of pairs
  whose chosen answer gets the higher implicit reward, `tunesmith.predict.preference.implicit_rewards`) with a
  Wilson interval, and its mean reward margin with a bootstrap interval; beside it, the "before": the reference
  model's own ranking (the model with the run's adapter disabled: the `model.init_from` run's model, or the base),
  the share of pairs where ``log p(chosen) > log p(rejected)`` and the mean of that log-probability margin.
  Each pair's numbers go to ``preference_pairs.jsonl`` (`PAIRS_FILE`): the gate pairs them row by row.
- the task block: a preference step is trained on pairs, but what it must not lose is the task of the run it
  continues from. With `model.init_from`, the usual comparison (`tunesmith.evaluate.runner.evaluate_run`) is
  measured on that run's test rows, with its task, metrics and data and evaluate settings, and "base" is the
  init_from model (`task_inputs`), so a step that costs task accuracy shows in the usual table with its deltas.

Intervals use the gate's settings (`gate.confidence`, `gate.resamples`, `gate.seed`), so eval.json and gate.json
say the same level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from tunesmith import distributed
from tunesmith.config.gate_section import GateConfig
from tunesmith.config.preference_section import preference_beta
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import PREFERENCE_METHODS
from tunesmith.data.example import Example
from tunesmith.data.pairs import TokenizedPair, tokenized_pair_split
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import ConfigError, DataError, RunError
from tunesmith.evaluate.tasks import last_user_message
from tunesmith.json_files import read_jsonl, write_jsonl
from tunesmith.models import load_tuned_model
from tunesmith.predict.preference import implicit_rewards, pair_logps
from tunesmith.results.intervals import bootstrap_mean_interval, wilson_interval
from tunesmith.run_dir import RunDir
from tunesmith.text import count_of

_console = Console(stderr=True)
PAIRS_FILE = "preference_pairs.jsonl"
"""In the run folder: one line per scored test pair (its location, each log-probability, token counts and both
margins), written by evaluation, read by the gate."""


# ---- which runs, and what they are compared with ------------------------------------------------------------------


def preference_method(config: RunConfig) -> str | None:
    """The run's preference method (dpo, orpo, simpo); None for a supervised run."""
    return config.method if config.method in PREFERENCE_METHODS else None


def init_from_run(config: RunConfig) -> RunDir | None:
    """The finished run this run continues from (`model.init_from`); None when it starts from the base model."""
    folder = getattr(config.model, "init_from", None)
    return RunDir(folder) if folder else None


def init_from_label(config: RunConfig) -> str | None:
    """How the report and tables name the model a run with `model.init_from` is compared with ("base" in eval.json):
    ``SFT model (runs/sft)``; None for a run without it."""
    source = init_from_run(config)
    if source is None:
        return None
    path = source.root.resolve()
    return f"SFT model ({path.parent.name}/{path.name})"


def task_inputs(config: RunConfig, inputs: RunInputs) -> tuple[RunConfig, RunInputs, dict | None]:
    """``(config, inputs, init_from record)`` the task block of a run is measured with: a preference run with
    `model.init_from` is scored on that run's test rows, with its task, metrics, data and evaluate settings (the
    model settings stay this run's: its base is the init_from model); every other run as it is. The record (None
    without `model.init_from`) names the init_from run, its label and the gate's margin, and for a preference run
    the task and test rows it was measured on."""
    source = init_from_run(config)
    if source is None:
        return config, inputs, None
    name = source.root.resolve().name
    record = {"run": name, "path": str(source.root.resolve()), "label": init_from_label(config),
              "margin": (config.gate or GateConfig()).margin}
    if preference_method(config) is None:
        return config, inputs, record
    source_config = source.config()  # one line naming the folder when it is no run
    source_inputs = RunInputs(source_config)
    try:
        test = source_inputs.splits.test
        task = source_inputs.task
    except (DataError, ConfigError) as exc:
        raise RunError(f"the task of {name} (model.init_from) cannot be measured again: its test rows cannot be "
                       f"read: {exc}", f"restore the data files {source.config_path} names, or evaluate without "
                                      "model.init_from") from None
    if not test:
        raise RunError(f"the task of {name} (model.init_from) cannot be measured again: its data has no test rows",
                       f"give its data a test split ({source.config_path}: data.test or data.split.test)")
    scoring = config.model_copy(update={"data": source_config.data, "evaluate": source_config.evaluate})
    return scoring, source_inputs, {**record, "task": task.name, "test_rows": len(test)}


# ---- the held-out pairs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairScores:
    """Each scored pair's log-probability sums (the tuned model's and the reference policy's) and answer tokens."""

    locations: list[str]
    prompts: list[str]
    chosen: list[float]
    rejected: list[float]
    reference_chosen: list[float]
    reference_rejected: list[float]
    chosen_tokens: list[int]
    rejected_tokens: list[int]

    def __len__(self) -> int:
        return len(self.locations)


def evaluate_preference(config: RunConfig, run: RunDir, examples: list[Example]) -> dict:
    """The eval.json ``preference`` block of a preference run on its test pairs ``examples``, and
    ``preference_pairs.jsonl`` written beside it; the block says ``skipped`` (and why) when there is no pair to
    score."""
    method = preference_method(config)
    if not examples:
        return _skipped("the run's test split has no preference pairs (give data.test, or set data.split.test "
                        "above 0)")
    model, tokenizer = load_tuned_model(run.root, merge=False)  # the adapter stays: disabled, it is the reference
    pairs, _ = tokenized_pair_split(config.data, "test", examples, tokenizer)
    scored = [pair for pair in pairs if pair.supervised]
    if not scored:
        return _skipped(f"every one of the {count_of(len(pairs), 'test pair')} lost an answer to truncation "
                        f"(data.max_length {config.data.max_length})")
    prompts = {example.location: last_user_message(example) for example in examples}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    _console.print(f"scoring {count_of(len(scored), 'held-out preference pair')} with the tuned model and its "
                   "reference")
    scores = score_pairs(model, scored, prompts, config.evaluate.batch_size, pad)
    del model
    settings = config.gate or GateConfig()
    block = preference_block(method, preference_beta(config), scores, settings.confidence, settings.resamples,
                             settings.seed)
    if len(scored) < len(pairs):
        block["left_out"] = {"pairs": len(pairs) - len(scored),
                             "reason": f"an answer lost every token to truncation (data.max_length "
                                       f"{config.data.max_length})"}
    if distributed.is_main():
        write_jsonl(run.root / PAIRS_FILE, pair_rows(method, preference_beta(config), scores))
    return block


def score_pairs(model, pairs: list[TokenizedPair], prompts: dict[str, str], batch_size: int,
                pad_token_id: int) -> PairScores:
    """Every pair's log-probabilities under the tuned model and under its reference policy (the adapter disabled).
    A non-finite one is a `RunError`: an accuracy over NaN margins would read as a number and mean nothing."""
    chosen, rejected = pair_logps(model, pairs, batch_size, pad_token_id)
    reference_chosen, reference_rejected = pair_logps(model, pairs, batch_size, pad_token_id, reference=True)
    scores = PairScores([pair.location for pair in pairs], [prompts.get(pair.location, "") for pair in pairs],
                        chosen, rejected, reference_chosen, reference_rejected,
                        [pair.chosen.num_supervised for pair in pairs],
                        [pair.rejected.num_supervised for pair in pairs])
    check_finite(scores)
    return scores


def check_finite(scores: PairScores) -> None:
    for which, (first, second) in (("tuned", (scores.chosen, scores.rejected)),
                                   ("reference", (scores.reference_chosen, scores.reference_rejected))):
        bad = [location for location, a, b in zip(scores.locations, first, second)
               if not (math.isfinite(a) and math.isfinite(b))]
        if bad:
            raise RunError(f"the {which} model gives non-finite log-probabilities to {len(bad)} of "
                           f"{count_of(len(scores), 'test pair')} (first {bad[0]}), so no preference accuracy can be "
                           "measured", "the weights hold NaN or inf: check the run's training (train.on_nonfinite) "
                                       "and train it again")


def margins(method: str, beta: float, scores: PairScores) -> tuple[np.ndarray, np.ndarray]:
    """``(tuned margins, reference margins)`` per pair: the method's implicit reward of the chosen answer minus the
    rejected one's, and the reference's ``log p(chosen) - log p(rejected)``."""
    reward_chosen, reward_rejected = implicit_rewards(
        method, beta, _tensor(scores.chosen), _tensor(scores.rejected), _tensor(scores.reference_chosen),
        _tensor(scores.reference_rejected), _tensor(scores.chosen_tokens), _tensor(scores.rejected_tokens))
    reference = np.asarray(scores.reference_chosen, dtype=float) - np.asarray(scores.reference_rejected, dtype=float)
    return (reward_chosen - reward_rejected).numpy(), reference


def preference_block(method: str, beta: float, scores: PairScores, confidence: float, resamples: int,
                     seed: int) -> dict:
    """eval.json's ``preference`` block from the pairs' log-probabilities (a pure function)."""
    tuned, reference = margins(method, beta, scores)
    return {"pairs": len(scores), "method": method, "beta": beta, "confidence": confidence,
            "tuned": ranking(tuned, confidence, resamples, seed),
            "reference": ranking(reference, confidence, resamples, seed),
            "margins": {"tuned": f"{method} implicit reward of the chosen answer minus the rejected one's",
                        "reference": "log p(chosen) - log p(rejected) under the reference model, in nats"}}


def ranking(margin: np.ndarray, confidence: float, resamples: int, seed: int) -> dict:
    """Accuracy (the share of margins above 0) with its Wilson interval, and the mean margin with its bootstrap
    interval."""
    right = int(np.sum(margin > 0))
    return {"accuracy": right / len(margin), "accuracy_ci": wilson_interval(right, len(margin), confidence),
            "margin_mean": float(np.mean(margin)),
            "margin_ci": bootstrap_mean_interval(margin, confidence, resamples, seed)}


def pair_rows(method: str, beta: float, scores: PairScores) -> list[dict]:
    tuned, reference = margins(method, beta, scores)
    return [{"location": scores.locations[i], "prompt": scores.prompts[i], "chosen_logp": scores.chosen[i],
             "rejected_logp": scores.rejected[i], "reference_chosen_logp": scores.reference_chosen[i],
             "reference_rejected_logp": scores.reference_rejected[i], "chosen_tokens": scores.chosen_tokens[i],
             "rejected_tokens": scores.rejected_tokens[i], "margin": float(tuned[i]),
             "reference_margin": float(reference[i])} for i in range(len(scores))]


def read_pair_rows(run: RunDir) -> list[dict] | None:
    """preference_pairs.jsonl of a run; None when evaluation wrote none."""
    path = Path(run.root) / PAIRS_FILE
    return read_jsonl(path) if path.is_file() else None


def _tensor(values: list[float] | list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _skipped(reason: str) -> dict:
    _console.print(f"preference accuracy not measured: {reason}")
    return {"skipped": reason}

