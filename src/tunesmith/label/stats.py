"""`tunesmith label stats`: who labelled what, how far the annotators agree, and how far each agrees with the
teacher, each figure with the number of items it rests on.

Agreement is measured on the items the raters all labelled (a skip is no label): Cohen's kappa for two annotators,
Fleiss' kappa for three or more (`tunesmith.review.stats`, the review's own implementations), beside the observed
share of items they agree on with its Wilson interval. For generation, where two good answers rarely match word for
word, only the share of identical answers (normalized text) is given: kappa over free text means little.
"""

from __future__ import annotations

from collections import Counter

from tunesmith.label.store import Annotation, LabelQueue
from tunesmith.review.stats import CONFIDENCE, cohen_kappa, fleiss_kappa, wilson
from tunesmith.text import normalize_text


def label_stats(queue: LabelQueue) -> dict:
    """Every statistic of the queue as JSON-ready values (see the module docstring)."""
    items = queue.items()
    annotations = queue.annotations()
    annotators = queue.annotators()
    counts = {name: Counter() for name in annotators}
    for annotation in annotations:
        counts[annotation.annotator]["skipped" if annotation.skipped else "labeled"] += 1
    values = _values(annotations, queue.meta.task)
    teacher = {item.id: _comparable(item.teacher_suggestion, queue.meta.task) for item in items
               if item.teacher_suggestion is not None}
    return {
        "queue": str(queue.path), "run": queue.meta.run, "task": queue.meta.task, "items": len(items),
        "annotators": {name: {"labeled": counts[name]["labeled"], "skipped": counts[name]["skipped"]}
                       for name in annotators},
        "agreement": agreement(values, annotators, queue.meta.task),
        "teacher": None if queue.meta.teacher_model is None else {
            "model": queue.meta.teacher_model, "suggestions": len(teacher),
            "errors": sum(item.teacher_error is not None for item in items),
            "agreement": {name: pair_agreement(values.get(name, {}), teacher, queue.meta.task)
                          for name in annotators},
        },
        "interval": f"Wilson, {CONFIDENCE:.0%}",
    }


def agreement(values: dict[str, dict[int, str]], annotators: list[str], task: str) -> dict:
    """The annotators' agreement on the items every one of them labelled."""
    raters = [name for name in annotators if values.get(name)]
    if len(raters) < 2:
        return {"method": None, "kappa": None, "items": 0, "observed": None, "observed_interval": None,
                "note": "agreement needs two or more annotators who labelled"}
    shared = set.intersection(*(set(values[name]) for name in raters))
    rows = [[values[name][item_id] for name in raters] for item_id in sorted(shared)]
    if task == "generation":
        method, kappa = "identical answers", None
    elif len(raters) == 2:
        method, kappa = "cohen", cohen_kappa([row[0] for row in rows], [row[1] for row in rows])
    else:
        method, kappa = "fleiss", fleiss_kappa(rows)
    agreed = sum(len(set(row)) == 1 for row in rows)
    note = None
    if not rows:
        note = "no item was labelled by every one of them"
    elif kappa is None and task != "generation":
        note = "kappa not defined: too few shared items, or one label throughout"
    return {"method": method, "annotators": raters, "kappa": kappa, "items": len(rows),
            "observed": agreed / len(rows) if rows else None, "observed_interval": wilson(agreed, len(rows)),
            "note": note}


def pair_agreement(first: dict[int, str], second: dict[int, str], task: str) -> dict:
    """How often two raters (an annotator and the teacher) gave the same value on the items both rated."""
    shared = sorted(set(first) & set(second))
    agreed = sum(first[item_id] == second[item_id] for item_id in shared)
    kappa = None if task == "generation" else cohen_kappa([first[i] for i in shared], [second[i] for i in shared])
    return {"items": len(shared), "observed": agreed / len(shared) if shared else None,
            "observed_interval": wilson(agreed, len(shared)), "kappa": kappa}


def render_stats(stats: dict) -> str:
    lines = [f"queue {stats['queue']}: {stats['items']} items ({stats['task']}, run {stats['run']})"]
    if not stats["annotators"]:
        lines.append("nobody has annotated yet")
    for name, done in stats["annotators"].items():
        lines.append(f"  {name}: {done['labeled']} labelled, {done['skipped']} skipped")
    lines.append(f"agreement: {_agreement_line(stats['agreement'])}")
    teacher = stats["teacher"]
    if teacher is not None:
        lines.append(f"teacher {teacher['model']}: {teacher['suggestions']} suggestions, {teacher['errors']} errors")
        for name, pair in teacher["agreement"].items():
            lines.append(f"  {name} vs teacher: {_agreement_line(pair)}")
    return "\n".join(lines)


def _agreement_line(figures: dict) -> str:
    if not figures["items"]:
        return figures.get("note") or "no shared items"
    low, high = figures["observed_interval"]
    text = f"{figures['observed']:.0%} agree (95% CI {low:.0%}-{high:.0%}) on {figures['items']} items"
    if figures.get("kappa") is not None:
        text += f", kappa {figures['kappa']:.2f}" + (f" ({figures['method']})" if figures.get("method") else "")
    return text + (f"; {figures['note']}" if figures.get("note") else "")


def _values(annotations: list[Annotation], task: str) -> dict[str, dict[int, str]]:
    """Annotator → item → the value they gave (skips left out), comparable across raters."""
    values: dict[str, dict[int, str]] = {}
    for annotation in annotations:
        if not annotation.skipped:
            values.setdefault(annotation.annotator, {})[annotation.item_id] = _comparable(annotation.value, task)
    return values


def _comparable(value: str, task: str) -> str:
    if task == "generation":
        return normalize_text(value)
    if task == "regression":
        return repr(float(value))
    return value

