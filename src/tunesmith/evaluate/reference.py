"""The run's reference (`tunesmith.results.reference`) and eval.json's ``calibration`` block, computed at evaluation
while the tuned model is loaded.

The held-out rows are the validation rows (a seeded sample of at most `MAX_VALIDATION_ROWS`, or
`MAX_VALIDATION_GENERATIONS` where each costs a generation) followed by the test rows: the model trained on
neither. Each is seen as `tunesmith serve` sees a request: its templated prompt's tokens (system prompt included),
its input (`Reference.input_of`: the last user turn without the instruction every training row shares), the
model's predicted label and the confidence the server reports.

- Classification by label likelihood: the validation rows are scored like the test rows, the temperature is fitted
  on them (`tunesmith.predict.calibration.fit_temperature`) and the test rows measure it: ECE, Brier score and the
  reliability bins before and after. The confidence is the calibrated probability of the predicted label.
- Generation: the confidence is each answer's sequence confidence (exp of its tokens' mean log-probability).
- Regression and ``evaluate.classification_mode: generate`` give no confidence (``confidence_skipped`` says why).
- Novelty: a `NoveltyIndex` of the training inputs (deduplicated), saved to the run's ``novelty/``, scores every
  held-out input; it needs the rag extra, without which ``novelty_skipped`` says so and the rest is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from tunesmith import distributed
from tunesmith.atomic import remove_folder
from tunesmith.config.schema import EvaluateConfig, RunConfig
from tunesmith.data.check.quality import shared_instruction
from tunesmith.data.example import Example, Splits
from tunesmith.data.splits import sample
from tunesmith.data.task import Task
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.extras import MissingExtraError, require_extras
from tunesmith.models.provision import resolve_embedding_model
from tunesmith.predict.answers import answer, truth_of
from tunesmith.predict.calibration import (
    calibration_figures,
    every_row_ranked_right,
    fit_temperature,
    label_probabilities,
)
from tunesmith.predict.calibration import sequence_confidence as confidence_of_sequence
from tunesmith.results.reference import Reference, write_reference
from tunesmith.retrieval.dense import Embedder, SentenceEmbedder
from tunesmith.retrieval.novelty import EMBEDDING_SETTING, NoveltyIndex
from tunesmith.run_dir import RunDir

MAX_VALIDATION_ROWS = 1_000
"""Validation rows in the reference (a seeded sample beyond): the temperature and every percentile are stable long
before, and each likelihood-scored row costs a forward pass."""
MAX_VALIDATION_GENERATIONS = 100
"""Validation rows answered by generating (generation runs, ``classification_mode: generate``): a generation costs
up to ``evaluate.max_new_tokens`` forward passes, and the test rows are in the reference anyway."""
SAMPLE_SEED = 0
NO_VALIDATION = ("no validation rows to fit the temperature on (give data.validation or set data.split.validation "
                 "above 0)")


@dataclass
class RunReference:
    """What evaluation adds to a run: the reference, eval.json's ``calibration`` block, and the novelty index
    (None when novelty was not measured)."""

    reference: Reference
    calibration: dict
    novelty: NoveltyIndex | None


def novelty_embedder(config: RunConfig) -> Embedder:
    """The embedder novelty is measured with: `monitor.embedding_model`, which `tunesmith serve` uses too."""
    return SentenceEmbedder(config.monitor.embedding_model, key=EMBEDDING_SETTING)


def novelty_unavailable(config: RunConfig) -> str | None:
    """Why novelty cannot be measured for this run (the rag extra is missing, training rows are streamed), else
    None. A `monitor.embedding_model` that names no model is a `ConfigError` here, on every process, before any
    model time is spent."""
    try:
        require_extras("novelty (the run's reference)", "rag")
    except MissingExtraError as error:
        return str(error)
    if config.data.streaming:
        return "data.streaming: the training rows are not held in memory to index"
    resolve_embedding_model(config.monitor.embedding_model, EMBEDDING_SETTING)
    return None


def build_reference(config: RunConfig, model, tokenizer, splits: Splits, task: Task, test_rows: list[dict],
                    novelty_skipped: str | None) -> RunReference | None:
    """The run's reference from the tuned ``model`` and its evaluation records of the test rows (``test_rows``,
    `tunesmith.evaluate.tasks.evaluate_model`'s, with ``scores`` or ``confidence``). Every process answers its
    share of the validation rows; the main process alone measures the rest and gets the result (others: None)."""
    started = time.perf_counter()
    validation = sample(splits.validation, _validation_cap(task, config.evaluate), SAMPLE_SEED)
    validation_answers = _validation_answers(model, tokenizer, validation, task, config.evaluate)
    if not distributed.is_main():
        return None
    held_out = [*validation, *splits.test]
    answered = _answered(task, config.evaluate, validation, validation_answers, splits.test, test_rows)
    instruction = shared_instruction(splits.train or held_out, splits.format)
    draft = Reference(task=task.name, sources={"validation": len(validation), "test": len(splits.test)},
                      instruction=instruction, prompt_tokens=[])
    inputs = [draft.input_of(messages=example.prompt_messages) or "" for example in held_out]
    index, novelty, novelty_skipped = _novelty(config, splits.train, draft, inputs, novelty_skipped)
    reference = Reference(
        task=task.name, sources=draft.sources, instruction=instruction,
        prompt_tokens=[len(prompt_token_ids(tokenizer, example.prompt_messages)) for example in held_out],
        novelty=novelty, novelty_skipped=novelty_skipped, embedder=index.embedder.identity if index else None,
        training_inputs=index.size if index else None, labels=task.labels,
        predicted_labels=answered.predicted_labels, confidence=answered.confidence, confidence_kind=answered.kind,
        confidence_skipped=answered.skipped, temperature=answered.temperature,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={"seconds": round(time.perf_counter() - started, 2), "validation_rows_available": len(splits.validation),
               **({"temperature_skipped": NO_VALIDATION} if answered.kind == "label_probability"
                  and answered.temperature is None else {})},
    )
    return RunReference(reference, answered.calibration, index)


def write_run_reference(run: RunDir, built: RunReference | None) -> None:
    """Replace the run's reference and novelty index with ``built``'s; None removes both (a reference of an earlier
    evaluation would describe other weights or data). The old reference goes first, so a process killed midway
    leaves no reference rather than one that disagrees with its novelty index."""
    run.reference.unlink(missing_ok=True)
    if built is None or built.novelty is None:
        remove_folder(run.novelty)
    else:
        built.novelty.save(run.novelty)
    if built is not None:
        write_reference(run.reference, built.reference)


def skipped_calibration(reason: str) -> dict:
    return {"skipped": reason}


def _validation_cap(task: Task, settings: EvaluateConfig) -> int:
    generates = task.name == "generation" or (task.name == "classification" and
                                              settings.classification_mode == "generate")
    return MAX_VALIDATION_GENERATIONS if generates else MAX_VALIDATION_ROWS


def _validation_answers(model, tokenizer, validation: list[Example], task: Task, settings: EvaluateConfig):
    """The tuned model's answers to the validation rows, where the reference needs them (not for regression, which
    records neither a label nor a confidence); every process answers its share."""
    if not validation or task.name == "regression":
        return None
    return answer(model, tokenizer, validation, task, settings, token_logprobs=True)


@dataclass
class _Answered:
    """What the held-out rows' answers add to the reference (see `Reference` for each field)."""

    predicted_labels: list[str] | None = None
    confidence: list[float] | None = None
    kind: str | None = None
    skipped: str | None = None
    temperature: float | None = None
    calibration: dict | None = None


def _answered(task: Task, settings: EvaluateConfig, validation: list[Example], answers, test: list[Example],
              test_rows: list[dict]) -> _Answered:
    """The predicted labels and confidence of the held-out rows (validation, then test), and the calibration."""
    if task.name == "generation":
        sequence = [confidence_of_sequence(logprobs) for logprobs in (answers.token_logprobs if answers else [])]
        return _Answered(confidence=[*sequence, *(row["confidence"] for row in test_rows)], kind="sequence",
                         calibration=skipped_calibration("generation runs have no label probabilities; the "
                                                         "reference holds their answers' sequence confidence"))
    if task.name == "regression":
        why = "regression answers are numbers read from generated text; no confidence is measured for them"
        return _Answered(skipped=why, calibration=skipped_calibration(why))
    predicted = [*(answers.predictions if answers else []), *(row["prediction"] for row in test_rows)]
    if settings.classification_mode == "generate":
        why = "evaluate.classification_mode is generate, which gives no label probabilities (likelihood does)"
        return _Answered(predicted, skipped=why, calibration=skipped_calibration(why))
    labels = task.labels
    validation_scores = answers.label_scores if answers else []
    test_scores = [[row["scores"][label] for label in labels] for row in test_rows]
    temperature, calibration = _calibrate(labels, validation, validation_scores, test, test_scores)
    probabilities = label_probabilities([*validation_scores, *test_scores], temperature)
    return _Answered(predicted, [float(row.max()) for row in probabilities], "label_probability",
                     temperature=temperature, calibration=calibration)


def _calibrate(labels: list[str], validation: list[Example], validation_scores: list[list[float]],
               test: list[Example], test_scores: list[list[float]]) -> tuple[float | None, dict]:
    """The temperature fitted on the validation rows, and eval.json's ``calibration`` block measured on the test
    rows (rows whose truth is not one of the labels, possible with a forced `evaluate.task`, are left out)."""
    fit_scores, fit_targets = _labelled(labels, validation, validation_scores)
    if not fit_targets:
        return None, skipped_calibration(NO_VALIDATION)
    # A 64-row validation split the model got all right fitted T = 0.05 and took the test ECE from 0.024 to 0.041.
    every_row_right = every_row_ranked_right(fit_scores, fit_targets)
    temperature = 1.0 if every_row_right else fit_temperature(fit_scores, fit_targets)
    scores, targets = _labelled(labels, test, test_scores)
    block = {
        "temperature": temperature, "validation_rows": len(fit_targets), "test_rows": len(targets),
        "before": calibration_figures(label_probabilities(scores), targets),
        "after": calibration_figures(label_probabilities(scores, temperature), targets),
    }
    if every_row_right:
        block["note"] = (f"the model answered all {len(fit_targets)} validation rows right, so no temperature can be "
                         "fitted on them: the probabilities are left as they are (T = 1); more validation rows fit one")
    return temperature, block


def _labelled(labels: list[str], examples: list[Example], scores: list[list[float]]):
    kept = [(row, labels.index(truth_of(example))) for example, row in zip(examples, scores, strict=True)
            if truth_of(example) in labels]
    return [row for row, _ in kept], [target for _, target in kept]


def _novelty(config: RunConfig, train: list[Example], draft: Reference, inputs: list[str],
             skipped: str | None) -> tuple[NoveltyIndex | None, list[float] | None, str | None]:
    """The novelty index of the training inputs and each held-out input's score; or None, None and why not."""
    if skipped is not None:
        return None, None, skipped
    training_inputs = list(dict.fromkeys(draft.input_of(messages=example.prompt_messages) or "" for example in train))
    if not training_inputs:
        return None, None, "the run has no training rows to compare inputs with"
    index = NoveltyIndex.build(training_inputs, novelty_embedder(config))
    return index, index.scores(inputs), None

