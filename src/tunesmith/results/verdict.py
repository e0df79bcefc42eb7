"""The verdict on a run, one for every place a person looks (the report, the UI's run page, runs table and
compare): is the tuned model worth using? Judged on the task's first metric against the base model, the best
classic baseline and the constant baseline (the majority class, the mean target), then the release gate.

Why the constant baseline has its own level: a classifier that answers the same label to every row can still
show a large gain over a base model that answers nothing useful, and a plain "+0.15 accuracy" hides that it has
learnt nothing. A model whose predictions are one label, or that does not beat the constant answer, is
``degenerate`` whatever its delta.

Pure functions of the eval.json and gate.json dicts: no model, no file.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.config.gate_section import GateConfig
from tunesmith.config.vocabulary import BASELINES, MINIMIZED, TASK_METRICS
from tunesmith.document import format_value, is_number, plain
from tunesmith.results.comparison import best_baseline
from tunesmith.results.gate import margin_in_units, scaled_margin_text

LEVELS = ("good", "mixed", "worse", "degenerate", "unknown")
"""From best to worst, then "unknown" (not evaluated): ``good`` beats the base and every baseline (and the gate
did not fail); ``mixed`` beats the base but not the best baseline, or its gate failed or is stale; ``worse`` does
not beat the base; ``degenerate`` does no better than a constant answer.

A preference run that continues from another (`model.init_from`) is judged against that model on its task the
other way round: it need not beat it, but a task metric that fell by more than `gate.margin` (in the metric's units:
`tunesmith.results.gate.margin_in_units`) is ``worse``. A
preference run whose preference accuracy on the held-out pairs is not above its reference model's own ranking is at
best ``mixed``."""

CONSTANT_BASELINES = ("majority", "mean")
"""The baselines that give one answer to every row (`tunesmith.config.vocabulary.BASELINES`)."""
DEFAULT_MARGIN = GateConfig.model_fields["margin"].default
"""The gate's margin when eval.json does not record the run's own (`gate.margin`, as stated: on the 0–1 scale)."""


@dataclass(frozen=True)
class Verdict:
    level: str
    """One of `LEVELS`."""
    headline: str
    """A few words for a table cell: "beats base +0.264 and TF-IDF + logistic regression +0.010"."""
    sentences: tuple[str, ...]
    """What a run page or report says: the comparison with the base, with the best baseline, the degenerate
    warning and the gate, one sentence each."""
    metric: str | None
    rows: int | None
    """The number of test rows the figures come from."""


def _better(metric: str, margin: float) -> bool:
    return margin < 0 if metric in MINIMIZED else margin > 0


def _first_metric(result: dict) -> str | None:
    tuned = result.get("tuned") or {}
    return next((metric for metric in TASK_METRICS.get(result.get("task"), ()) if is_number(tuned.get(metric))),
                None)


def one_label_answered(result: dict) -> str | None:
    """The label a classifier gave to every test row, from its confusion matrix; None when it gave several (or
    it is not a classifier)."""
    matrix = ((result.get("tuned") or {}).get("confusion_matrix") or {})
    labels, counts = matrix.get("labels"), matrix.get("matrix")
    if not labels or not counts or sum(map(sum, counts)) < 2:
        return None
    predicted = [sum(row[column] for row in counts) for column in range(len(labels))]
    used = [label for label, count in zip(labels, predicted) if count]
    return used[0] if len(used) == 1 else None


def run_verdict(result: dict | None, gate_state: str | None = None, gate_line: str | None = None) -> Verdict:
    """The `Verdict` of an eval.json dict (None: not evaluated) and, when the run was gated, its gate state
    (`tunesmith.results.gate.gate_state`: passed, failed, stale, not gated, unreadable) and line."""
    if not result or _first_metric(result) is None:
        return Verdict("unknown", "not evaluated", ("Not evaluated yet.",), None, None)
    metric = _first_metric(result)
    tuned = result["tuned"][metric]
    rows = result.get("num_examples")
    sentences, short = [], []
    base = (result.get("base") or {}).get(metric)
    beats_base = kept_task = None
    init_from = result.get("init_from") if isinstance(result.get("init_from"), dict) else None
    if init_from and isinstance(result.get("preference"), dict) and is_number(base):
        kept_task = _kept_task(metric, tuned, base, rows, init_from, sentences, short)
    elif is_number(base):
        margin = tuned - base
        beats_base = _better(metric, margin)
        sentences.append(f"{metric}: base {format_value(base)} → tuned {format_value(tuned)} "
                         f"({format_value(margin, signed=True)}) on {plain(rows)} test rows.")
        short.append(f"{'beats' if beats_base else 'does not beat'} base {format_value(margin, signed=True)}")
    else:
        sentences.append(f"{metric} of the tuned model: {format_value(tuned)} on {plain(rows)} test rows (the base "
                         "model was not evaluated).")
    best = best_baseline(result, metric)
    beats_best = None
    if best is not None:
        name, score = best
        margin = tuned - score
        beats_best = _better(metric, margin)
        described = BASELINES.get(name, (None, name))[1]
        sentences.append(f"{'Beats' if beats_best else 'Does not beat'} {described}, the best classic baseline "
                         f"({format_value(score)}, {format_value(margin, signed=True)}).")
        short.append(f"{'beats' if beats_best else 'below'} {described} {format_value(margin, signed=True)}")
    constant = [(name, scores[metric]) for name, scores in (result.get("baselines") or {}).items()
                if name in CONSTANT_BASELINES and is_number(scores.get(metric))]
    one_label = one_label_answered(result)
    degenerate = one_label is not None or any(not _better(metric, tuned - score) for _, score in constant)
    if one_label is not None:
        sentences.append(f"Degenerate: the tuned model answers {one_label!r} to every test row.")
    elif degenerate:
        name, score = constant[0]
        sentences.append(f"Degenerate: it does no better than always giving {BASELINES[name][1]} "
                         f"({metric} {format_value(score)}).")
    if gate_line and gate_state not in (None, "not gated"):
        sentences.append(f"Release gate: {gate_line}.")
    preference = _preference(result)
    if preference is not None:
        sentences.insert(0, preference[0])
        short.insert(0, preference[1])
    preference_ok = None if preference is None else preference[2]
    if degenerate:
        level, headline = "degenerate", ("answers one label to every row" if one_label is not None
                                         else "no better than a constant answer")
    elif beats_base is False or kept_task is False:
        level, headline = "worse", "; ".join(short)
    elif beats_best is False or preference_ok is False or gate_state in ("failed", "stale", "unreadable"):
        level, headline = "mixed", "; ".join(short + ([f"gate {gate_state}"] if gate_state in (
            "failed", "stale", "unreadable") else []))
    else:
        level, headline = "good", "; ".join(short) or f"{metric} {format_value(tuned)}"
    return Verdict(level, headline, tuple(sentences), metric, rows)


def _kept_task(metric: str, tuned: float, base: float, rows: int | None, init_from: dict, sentences: list[str],
               short: list[str]) -> bool:
    """A preference run that continues from another (`model.init_from`, eval.json's ``init_from``) is measured on
    that run's test rows against its model: it need not beat it on the task, but must not fall by more than the
    gate's margin. Says so in ``sentences`` and ``short``; returns whether the task was kept."""
    label = init_from.get("label") or f"the model of {init_from.get('run')}"
    stated = init_from.get("margin", DEFAULT_MARGIN)
    change = tuned - base
    fell = change if metric in MINIMIZED else -change
    kept = fell <= margin_in_units(stated, metric)
    margin = scaled_margin_text(stated, metric) or f"gate.margin {format_value(stated)}"
    sentences.append(f"{metric} on the {plain(rows)} test rows of {init_from.get('run')}: {label} {format_value(base)} "
                     f"→ tuned {format_value(tuned)} ({format_value(change, signed=True)}); "
                     + ("kept within" if kept else "fell beyond") + f" {margin}.")
    short.append(f"{metric} {'kept' if kept else 'fell'} vs {label} {format_value(change, signed=True)}"
                 + ("" if kept else f" (beyond {margin})"))
    return kept


def _preference(result: dict) -> tuple[str, str, bool] | None:
    """``(sentence, short text, whether the tuned model ranks the held-out pairs better than its reference)`` of a
    preference run (eval.json's ``preference``); None for other runs. Unmeasured reads as not better: nothing shows
    the preference step helped."""
    block = result.get("preference")
    if not isinstance(block, dict):
        return None
    if "skipped" in block or not is_number((block.get("tuned") or {}).get("accuracy")) \
            or not is_number((block.get("reference") or {}).get("accuracy")):
        reason = block.get("skipped") or "eval.json holds no preference accuracy"
        return f"Preference accuracy not measured: {reason}.", "preference accuracy not measured", False
    tuned, reference = block["tuned"]["accuracy"], block["reference"]["accuracy"]
    better = tuned > reference
    sentence = (f"Preference accuracy on {plain(block.get('pairs'))} held-out pairs: reference "
                f"{format_value(reference)} → tuned {format_value(tuned)}"
                + ("." if better else ", not above the reference's ranking."))
    short = (f"preference accuracy {format_value(reference)} → {format_value(tuned)}"
             + ("" if better else " (not above the reference)"))
    return sentence, short, better
