"""Base vs tuned (and the classic baselines) side by side: the comparison table of an eval.json dict, for the
terminal (`tunesmith eval` and `compare`), the run report, the sweep report, the model card of an export and the
web UI; the sentence that says whether the tuned model beats the best baseline; and, for several runs side by side,
which test rows each was scored on and whether their metrics may be ranked at all.

Pure functions of the dict: no model, no file, no torch, so every reader of results can import them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from tunesmith.config.vocabulary import BASELINES, MINIMIZED, TASK_METRICS
from tunesmith.document import NOT_AVAILABLE, Table, format_duration, format_value, is_number, plain, text_table


def comparison_table(result: dict) -> Table:
    """``metric | base | tuned | delta | <each baseline>`` for every scalar metric of an eval.json dict, and the
    same columns on the test rows not leaked from train when some were (nested detail such as per_class is left
    out; a metric that could not be computed, or a baseline that has none such as the loss, shows as "not
    available")."""
    first, second = result.get("columns") or ("base", "tuned")
    baselines = list(result.get("baselines") or {})
    blocks = [(result.get("base") or {}, result.get("tuned") or {}, result.get("baselines") or {}, "")]
    unleaked = result.get("unleaked")
    if unleaked:
        blocks.append((unleaked.get("base") or {}, unleaked.get("tuned") or {}, unleaked.get("baselines") or {},
                       ", unleaked"))
    names = [name for name in dict.fromkeys([*blocks[0][1], *blocks[0][0]])
             if all(value is None or is_number(value) for value in (blocks[0][0].get(name), blocks[0][1].get(name)))]
    header = ["metric"] + [f"{column}{suffix}" for *_, suffix in blocks
                           for column in (first, second, "delta", *baselines)]
    rows = []
    for name in names:
        row = [name]
        for base, tuned, others, _ in blocks:
            both = is_number(base.get(name)) and is_number(tuned.get(name))
            delta = format_value(tuned[name] - base[name], signed=True) if both else NOT_AVAILABLE
            row += [plain(base.get(name)), plain(tuned.get(name)), delta]
            row += [plain((others.get(baseline) or {}).get(name)) for baseline in baselines]
        rows.append(row)
    return Table(header, rows, caption=comparison_caption(result))


def comparison_caption(result: dict) -> str:
    caption = f"{result.get('task')} on {plain(result.get('num_examples'))} test rows"
    if result.get("against"):
        caption += f" of this run, the previous run {result['against']} scored on them too"
    unleaked = result.get("unleaked")
    if unleaked:
        leaked = result["num_examples"] - unleaked["num_examples"]
        caption += (f"; {plain(leaked)} of them also in train, so the 'unleaked' columns score the other "
                    f"{plain(unleaked['num_examples'])}")
    baselines = result.get("baselines") or {}
    if baselines:
        times = [f"{name} {format_duration(scores.get('train_seconds'))}" if "skipped" not in scores
                 else f"{name} skipped ({scores['skipped']})" for name, scores in baselines.items()]
        caption += f"; baselines trained on the run's training rows: {', '.join(times)}"
    return caption


def best_baseline(result: dict, metric: str) -> tuple[str, float] | None:
    """The baseline of an eval.json dict that scores best on ``metric`` (lowest for losses and errors), with
    its score; None when no baseline has a number for it."""
    scored = [(name, scores[metric]) for name, scores in (result.get("baselines") or {}).items()
              if is_number(scores.get(metric))]
    if not scored:
        return None
    pick = min if metric in MINIMIZED else max
    return pick(scored, key=lambda item: item[1])


def baseline_verdict(result: dict) -> str | None:
    """One plain sentence on the tuned model against the best baseline, on the task's first metric both have
    (accuracy, mse, ...): "The tuned model beats TF-IDF + logistic regression, the best baseline, by +0.0100
    accuracy (0.9830 vs 0.9730)."; None without baselines or a tuned score."""
    tuned = result.get("tuned") or {}
    for metric in TASK_METRICS.get(result.get("task"), ()):
        best = best_baseline(result, metric)
        if best is None or not is_number(tuned.get(metric)):
            continue
        name, score = best
        described, margin = BASELINES.get(name, (None, name))[1], tuned[metric] - score
        beats = margin < 0 if metric in MINIMIZED else margin > 0
        scores = f"{format_value(tuned[metric])} vs {format_value(score)}"
        if beats:
            return (f"The tuned model beats {described}, the best baseline, by {format_value(margin, signed=True)} "
                    f"{metric} ({scores}).")
        return (f"The tuned model does not beat {described}, the best baseline: {metric} {scores} "
                f"({format_value(margin, signed=True)}).")
    return None


def format_comparison(result: dict) -> str:
    """`comparison_table` as plain text."""
    return "\n".join(text_table(comparison_table(result)))


# ---- several runs: the test rows each was scored on, and a ranking only when they are the same -------------------

FINGERPRINT_LENGTH = 12
"""Hex digits of a test set's fingerprint: enough that two different test sets never share one by chance in a
folder of runs, short enough to read in a table cell."""


def fingerprint_rows(rows: Iterable[dict]) -> str | None:
    """The identity of the test rows a run was scored on, from its prediction records (predictions.jsonl's lines, or
    the evaluation's rows before it writes them): a sha256 over each row's prompt and reference, in any order (the
    same rows shuffled are the same test set; a row twice counts twice). None when there are no rows or a row has
    no prompt (an older or foreign layout: the identity is unknown, not "the same")."""
    digests = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            return None
        text = json.dumps([row["prompt"], row.get("reference")], ensure_ascii=False, sort_keys=True, default=str)
        digests.append(hashlib.sha256(text.encode()).hexdigest())
    if not digests:
        return None
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()[:FINGERPRINT_LENGTH]


@dataclass(frozen=True)
class ScoredRows:
    """The test set one run was scored on: its number of rows (eval.json's ``num_examples``) and its fingerprint
    (`fingerprint_rows`; None when unknown). A run not evaluated has neither."""

    rows: int | None
    fingerprint: str | None

    def describe(self) -> str:
        if self.rows is None:
            return "not evaluated"
        return f"{plain(self.rows)} rows" + (f" (test set {self.fingerprint})" if self.fingerprint else
                                             " (which rows: unknown)")


def comparable_test_sets(scored: dict[str, ScoredRows]) -> tuple[bool, str]:
    """``(whether the evaluated runs' metrics may be ranked, the sentences that say so)`` for runs shown side by
    side: only runs scored on the same rows (the same count and fingerprint) are comparable. Runs on different rows
    are said to be so plainly, with the row counts, e.g. "These runs were scored on different test sets (1,000 rows
    vs 80 rows): their metrics are not comparable."; runs not evaluated are named and left out."""
    missing = [name for name, rows in scored.items() if rows.rows is None]
    evaluated = {name: rows for name, rows in scored.items() if rows.rows is not None}
    note = (f" Not evaluated yet, so not ranked: {', '.join(missing)}." if missing else "")
    if len(evaluated) < 2:
        return False, f"Fewer than two of these runs are evaluated: there is nothing to rank.{note}"
    distinct = list(dict.fromkeys((rows.rows, rows.fingerprint) for rows in evaluated.values()))
    counts = list(dict.fromkeys(count for count, _ in distinct))
    unknown = [name for name, rows in evaluated.items() if rows.fingerprint is None]
    if len(counts) == 1 and unknown:
        return False, (f"Whether these runs were scored on the same {plain(counts[0])} test rows cannot be checked "
                       f"({', '.join(unknown)}: no record of the rows, neither a test_set in eval.json nor prompts in "
                       f"predictions.jsonl): their metrics are not ranked.{note}")
    if len(distinct) > 1:
        # Different counts say enough; the same count on other rows needs the fingerprints to show the difference.
        sets = (" vs ".join(f"{plain(count)} rows" for count in counts) if len(counts) > 1 else
                " vs ".join(f"{plain(count)} rows (test set {fingerprint})" for count, fingerprint in distinct))
        return False, (f"These runs were scored on different test sets ({sets}): their metrics are not "
                       f"comparable.{note}")
    which = f"{len(evaluated)} evaluated runs" if missing else f"{len(evaluated)} runs"
    return True, f"All {which} were scored on the same {plain(counts[0])} test rows (test set {distinct[0][1]}).{note}"


def rank_runs(results: dict[str, dict]) -> tuple[str, list[tuple[str, float]]] | None:
    """``(metric, [(run, tuned score)], best first)`` on the first metric of the task that every run has; None
    when the runs are of different tasks or share no metric. Only for runs `comparable_test_sets` found comparable."""
    tasks = {result.get("task") for result in results.values()}
    if len(tasks) != 1:
        return None
    for metric in TASK_METRICS.get(next(iter(tasks)), ()):
        scores = [(name, (result.get("tuned") or {}).get(metric)) for name, result in results.items()]
        if all(is_number(score) for _, score in scores):
            return metric, sorted(scores, key=lambda item: item[1], reverse=metric not in MINIMIZED)
    return None
