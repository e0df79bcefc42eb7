"""`tunesmith review judge --verdict-by reference`: a model-free judge that prefers the answer closer to the item's
reference answer (the gold answer of the test row; for a preference run's review, the held-out pair's chosen
answer).

Each answer is scored on its own against the reference with the per-row score evaluation uses for the metric
(`tunesmith.predict.metrics.generation_metrics` on that one row: ROUGE-L F-measure on 0–1, sacrebleu BLEU on
0–100), so the verdict cannot depend on the order the answers are shown in: there is no position bias to cancel.
The answer with the higher score wins; scores closer than the tie margin (stated on the 0–1 scale and read in the
metric's units through `tunesmith.config.vocabulary.metric_scale`) are a tie. An item without a reference is left
unjudged and counted.

This judge measures closeness to the gold answer, not quality beyond it: an answer better than the reference, or
right in other words, loses to one that copies the reference's wording.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from tunesmith.config.vocabulary import metric_scale
from tunesmith.errors import ConfigError
from tunesmith.predict.metrics import generation_metrics
from tunesmith.review.judge import Decision, register_judge, store_verdict
from tunesmith.review.names import NAME_HINT, reviewer_name_error
from tunesmith.review.store import Item, ReviewStore

__all__ = ["REFERENCE_METRICS", "TIE_MARGIN", "ReferenceMetric", "decide", "judge_by_reference", "score"]

ReferenceMetric = Literal["rouge_l", "bleu"]
REFERENCE_METRICS: tuple[str, ...] = get_args(ReferenceMetric)
TIE_MARGIN = 0.01
"""Scores closer than this, on the metric's 0–1 scale (1 point of ROUGE-L; 1 BLEU point), are a tie: a difference
of a word or two in a long answer says nothing about which is better. A convention, not a measured threshold:
``--tie-margin`` sets another."""


def judge_by_reference(run_root, metric: ReferenceMetric = "rouge_l", tie_margin: float = TIE_MARGIN,
                       reviewer: str | None = None) -> dict:
    """Judge every item of the run's review not yet judged by this reviewer (``judge:reference-<metric>``) by each
    answer's ``metric`` against the item's reference; returns the counts of this call: ``judged``, ``ties`` (of
    those judged), ``no_reference`` (left unjudged) and ``remaining``."""
    if metric not in REFERENCE_METRICS:
        raise ConfigError("--metric", f"is {metric!r}; it must be one of: {', '.join(REFERENCE_METRICS)}")
    if not (math.isfinite(tie_margin) and 0 <= tie_margin < 1):
        raise ConfigError("--tie-margin", f"is {tie_margin:g}; it must be a number from 0 (no ties) to below 1, "
                                          "on the metric's 0–1 scale")
    name = reviewer or f"judge:reference-{metric}"
    if problem := reviewer_name_error(name, person=False):
        raise ConfigError("--reviewer", problem, NAME_HINT)
    counts = {"judged": 0, "ties": 0, "no_reference": 0}
    with ReviewStore.open(run_root) as store:
        register_judge(store, name)  # the verdict does not depend on the sides shown: A is the item's first model
        done = {judgment.item_id for judgment in store.judgments() if judgment.reviewer == name}
        for item in store.items():
            if item.item_id in done:
                continue
            if not (item.reference or "").strip():
                counts["no_reference"] += 1
                continue
            decision = _decide_item(item, metric, tie_margin)
            if not store_verdict(store, name, item.item_id, decision):
                continue
            counts["judged"] += 1
            counts["ties"] += decision.verdict == "tie"
        judged, total = store.progress(name)
    return {"reviewer": name, "metric": metric, "tie_margin": tie_margin, **counts, "remaining": total - judged}


def score(metric: ReferenceMetric, reference: str, answer: str) -> float:
    """``answer``'s ``metric`` against ``reference``, in the metric's units: evaluation's score of that one row."""
    return float(generation_metrics([reference], [answer])[metric])


def decide(metric: ReferenceMetric, score_a: float, score_b: float, tie_margin: float = TIE_MARGIN) -> Decision:
    """The verdict from both answers' scores: the higher wins unless they are closer than ``tie_margin`` (0–1
    scale). Always ``consistent``: the scores do not depend on the order shown."""
    margin = tie_margin * metric_scale(metric)
    difference = score_a - score_b
    verdict = "tie" if difference == 0 or abs(difference) < margin else "a" if difference > 0 else "b"
    comment = (f"{metric} against the reference: A {score_a:.4g}, B {score_b:.4g}: {verdict}"
               + (f" (within {margin:g})" if verdict == "tie" else ""))
    return Decision(verdict, comment, True)


def _decide_item(item: Item, metric: ReferenceMetric, tie_margin: float) -> Decision:
    return decide(metric, score(metric, item.reference, item.answers[item.first]),
                  score(metric, item.reference, item.answers[item.second]), tie_margin)
