"""The names tunesmith's config, code and generated docs share. Each vocabulary is one `Literal`, and the table
beside it describes every name for the manual (`python -m tunesmith.config.reference`).

Adding a name here is the one edit a new row format, chat template, training method or data-check finding needs
besides its implementation; tests check that the implementations cover exactly these names.
"""

from __future__ import annotations

from typing import Literal

RowFormat = Literal["alpaca", "messages", "sharegpt", "prompt_completion", "classification", "regression", "text",
                    "preference"]
ROW_FORMATS: dict[str, tuple[str, str]] = {
    "alpaca": ("instruction, input (optional), output", "user: instruction (+ input) → assistant: output"),
    "messages": ("messages: [{role, content}, …] (also OpenAI fine-tuning JSONL); tool calling: tools, "
                 "tool_calls, tool turns",
                 "the conversation (multi-turn, optional system; a user turn comes before the first assistant "
                 "turn); loss on every assistant turn except those with `weight: 0`"),
    "sharegpt": ("conversations: [{from, value}, …] (human/gpt/system; function_call/observation for tool "
                 "calling), optional system and tools",
                 "the conversation, as `messages`"),
    "prompt_completion": ("prompt, completion", "user: prompt → assistant: completion"),
    "classification": ("text, label (int with `label_names`, or string)",
                       "user: instruction + text → assistant: label name"),
    "regression": ("text, target/score/label (number)", "user: instruction + text → assistant: the number"),
    "text": ("text", "plain language modelling on the whole text"),
    "preference": ("prompt (string or [{role, content}, …]), chosen, rejected (each a string, an assistant message, "
                   "or a list of one: TRL's conversational shape), optional system",
                   "a pair: the prompt → the chosen answer and the rejected one (for `dpo`, `orpo`, `simpo`); "
                   "supervised methods learn the chosen answer"),
}
"""Format → (the keys it reads, the conversation it becomes)."""

TemplateName = Literal["model", "chatml", "llama-3", "alpaca", "plain"]
"""`model.chat_template` values that name a template rather than a Jinja file: the tokenizer's own, or a
built-in (`tunesmith.models.templates`)."""

Method = Literal["lora", "dora", "qlora", "full", "dpo", "orpo", "simpo"]
METHODS: dict[str, str] = {
    "lora": "LoRA",
    "dora": "DoRA",
    "qlora": "QLoRA (4-bit NF4 base)",
    "full": "full fine-tune",
    "dpo": "DPO (LoRA)",
    "orpo": "ORPO (LoRA)",
    "simpo": "SimPO (LoRA)",
}
"""Training method → how reports and model cards name it."""
PREFERENCE_METHODS = ("dpo", "orpo", "simpo")
"""Methods that train on preference pairs (`data.format: preference`) rather than on answers to imitate. They train a
LoRA adapter (the `lora:` section), so the reference policy of `dpo` is the model with that adapter disabled."""
ADAPTER_METHODS = ("lora", "dora", "qlora", *PREFERENCE_METHODS)
"""Methods that train a PEFT adapter on a frozen base: their checkpoints are adapter folders, loaded onto the base
and merged into it on export. `full` checkpoints are whole model folders."""


def is_preference(method: str) -> bool:
    """Whether `method` trains on preference pairs (see `PREFERENCE_METHODS`)."""
    return method in PREFERENCE_METHODS


def uses_adapter(method: str) -> bool:
    """Whether `method` trains a PEFT adapter (see `ADAPTER_METHODS`) rather than every weight."""
    return method in ADAPTER_METHODS


ExportFormat = Literal["hf", "gguf"]
EXPORT_FORMATS: dict[str, str] = {
    "hf": "`adapter/` (PEFT; adapter methods only) and `merged/` (plain transformers, safetensors)",
    "gguf": "`gguf/<run>-<quant>.gguf` (llama.cpp) and an Ollama `Modelfile` beside it",
}
"""`tunesmith export --format` → what it writes into the run folder."""
GgufQuant = Literal["f16", "q8_0"]
"""Tensor types of a GGUF export (`tunesmith export --format gguf --quant`); 1-D tensors (norms) stay f32 in both."""
DEFAULT_GGUF_QUANT = "f16"
"""As llama.cpp's converter: f16 keeps what a fine-tune learned up to rounding; q8_0 makes the file half as big."""


FindingKind = Literal[
    "unreadable", "truncated", "empty_output", "duplicate", "near_duplicate", "leakage", "conflicting_label",
    "label_imbalance", "copied_input", "length_outlier", "non_printable", "template", "tool_call",
    "identical_pair", "empty_side", "gold_leakage",
]
FINDING_KINDS: dict[str, str] = {
    "unreadable": "rows that cannot be read (bad JSON, missing keys, wrong types, a conversation without a user "
                  "turn before its first answer), listed as `FILE:LINE: problem` up to `data.check.max_errors` "
                  "while the other rows are still checked (a `tunesmith run` stops at the first one)",
    "truncated": "rows longer than `data.max_length`, with the supervised tokens each loses",
    "empty_output": "an empty or whitespace-only answer (any learned assistant turn)",
    "duplicate": "a row that repeats an earlier one exactly (every turn); the first of a group is not flagged",
    "near_duplicate": "a row whose normalized text (case-folded, no punctuation) has word 3-gram Jaccard ≥ "
                      "`data.check.near_duplicate_threshold` with an earlier kept row (MinHash + LSH for "
                      "candidates, exact Jaccard to confirm)",
    "leakage": "a validation/test row whose prompt is also in train, or whose prompt or whole row is near a train "
               "row (evaluation also scores the test rows without them)",
    "conflicting_label": "classification/regression rows with the same input and another label than its most "
                         "common one (all of them on a tie); for generation formats several answers to one prompt "
                         "are legitimate and not flagged",
    "label_imbalance": "in train: the most common label has `data.check.imbalance_ratio` times the rows of another",
    "copied_input": "an answer equal to its user turn, or found verbatim in it and at least half its length, "
                    "ignoring case and whitespace (punctuation counts: adding it may be the task; a short span of "
                    "a long prompt, as in extractive QA, is not a copy)",
    "length_outlier": "a token count more than `data.check.length_outlier_factor` interquartile ranges outside the "
                      "quartiles",
    "non_printable": "control characters (other than tab and newlines), U+FFFD and zero-width characters, named as "
                     "`U+XXXX`",
    "template": "the chat-template round trip fails: rendering, tokenizing and decoding does not give back the "
                "text, or the supervised tokens are not exactly each assistant reply plus EOS",
    "tool_call": "a tool call the row's declared `tools` do not allow: an undeclared function, arguments that do not "
                 "match its `parameters` JSON schema, or a tool result whose `tool_call_id` answers no call before "
                 "it (a tool result with no call before it at all is unreadable)",
    "identical_pair": "a preference pair whose chosen and rejected answers are the same text (ignoring surrounding "
                      "whitespace): it teaches nothing",
    "empty_side": "a preference pair whose chosen or rejected answer is empty or whitespace-only",
    "gold_leakage": "a preference pair whose prompt (compared as `near_duplicate` normalizes text, without system "
                    "turns) is a prompt of the gold test set: the test split of the `model.init_from` run, on "
                    "which the run's task metrics are re-measured (a validation or test pair whose prompt is in "
                    "this run's train split is `leakage`)",
}
WHOLE_DATA_FINDINGS = ("label_imbalance", "template")
"""Findings about the data as a whole rather than about rows: `data clean` has no rows to drop for them."""

TaskName = Literal["classification", "regression", "generation"]
"""What evaluation measures; the row formats `classification` and `regression` give those tasks, every other
format is generation."""
LABELED_FORMATS = ("classification", "regression")
"""Row formats whose rows carry a label or a target: each gives the task of its name (`task_of`)."""

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "precision", "recall", "f1"),
    "regression": ("mse", "mae", "pearson"),
    "generation": ("bleu", "rouge_l", "exact_match"),
}
"""The metrics `evaluate.metrics` may name for each task (`tunesmith.predict.metrics` computes them)."""
ALWAYS_REPORTED = ("loss", "perplexity")
"""Reported for every task."""
MINIMIZED = ("loss", "mse", "mae", "perplexity")
"""Metrics where lower is better (losses and errors); every other metric is a score, higher is better."""
PERCENT_POINT_METRICS = ("bleu",)
"""Metrics reported in percent points, 0–100 (sacrebleu's BLEU). Every other score is on 0–1 (accuracy, precision,
recall, f1, rouge_l, exact_match, a preference accuracy; pearson on −1–1); the errors (mse, mae, loss, perplexity)
are in the target's or the tokens' own units, with no fixed scale."""


def metric_scale(metric: str) -> float:
    """The value ``metric`` is reported at for a whole (1.0 of a 0–1 score): 100 for `PERCENT_POINT_METRICS`, else 1.
    A setting stated on the 0–1 scale (`gate.margin`) is multiplied by it to read in the metric's units."""
    return 100.0 if metric in PERCENT_POINT_METRICS else 1.0

Baseline = Literal["majority", "tfidf_logreg", "tfidf_svm", "mean", "tfidf_ridge"]
BASELINES: dict[str, tuple[str, str]] = {
    "majority": ("classification", "the majority class"),
    "tfidf_logreg": ("classification", "TF-IDF + logistic regression"),
    "tfidf_svm": ("classification", "TF-IDF + linear SVM"),
    "mean": ("regression", "the mean target"),
    "tfidf_ridge": ("regression", "TF-IDF + ridge regression"),
}
"""`evaluate.baselines` name → (the task it fits, how reports name it). `tunesmith.evaluate.baselines` builds them."""
AUTO_BASELINES: dict[str, tuple[str, ...]] = {
    "classification": ("majority", "tfidf_logreg"),
    "regression": ("mean", "tfidf_ridge"),
    "generation": (),
}
"""What `evaluate.baselines: auto` trains for each task: a constant predictor and a linear text model."""


def task_of(requested: str, row_format: str) -> str:
    """The task `evaluate.task` names, or for `auto` the row format's own task (classification, regression) or
    generation (every other format, and sources of mixed formats)."""
    if requested != "auto":
        return requested
    return row_format if row_format in LABELED_FORMATS else "generation"

BASE_MODEL = "base"
"""The name a user gives the run's base model: a request's `model` to `tunesmith serve`, `review create --against`."""
