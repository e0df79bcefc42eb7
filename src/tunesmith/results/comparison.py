"""Base vs tuned (and the classic baselines) side by side: the comparison table of an eval.json dict, for the
terminal (`tunesmith eval` and `compare`), the run report, the sweep report, the model card of an export and the
web UI; and the sentence that says whether the tuned model beats the best baseline.

Pure functions of the dict: no model, no file, no torch, so every reader of results can import them.
"""

from __future__ import annotations

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
