"""The gate's checks, each a pure function of what was measured into one entry of gate.json's ``checks``: its
``name``, ``title``, ``status`` (`tunesmith.results.gate.STATUSES`), a one-line ``reason`` with the numbers, and
the numbers themselves. Loading models and reading run folders is `tunesmith.gate.runner`'s.

A comparison (the tuned model against the base, the best classic baseline, the run in service) is judged on
every test row and, when some test rows leaked from train, on the unleaked rows too: it passes only when it
passes on both, so a model that memorized leaked rows cannot pass on them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from tunesmith.config.gate_section import GateConfig
from tunesmith.gate.stats import RowStatistics, mcnemar, paired_bootstrap, ratio_statistics
from tunesmith.predict.metrics import parse_number
from tunesmith.results.gate import margin_in_units, scaled_margin_text

TITLES = {
    "against_base": "beats the base model",
    "against_init_from": "keeps the task of the run it continues from",
    "preference_accuracy": "ranks held-out pairs better than its reference",
    "against_baseline": "not worse than the best classic baseline",
    "against_previous": "not worse than the run in service",
    "calibration": "confidence is calibrated",
    "valid_output": "answers are valid",
    "general_ability": "keeps the base's general ability",
    "latency": "answers fast enough",
    "export_size": "export is small enough",
}
"""Every check's name and title, in gate.json's order."""
MAX_EXAMPLES = 5
"""Invalid answers shown in the valid_output check."""


@dataclass(frozen=True)
class Paired:
    """Two models' answers to the same rows: the gate metric's statistics of each, and (classification) whether
    each answered each row right, for McNemar's test."""

    tuned: RowStatistics
    other: RowStatistics
    tuned_right: np.ndarray | None = None
    other_right: np.ndarray | None = None

    def subset(self, rows: list[int]) -> Paired:
        pick = np.asarray(rows, dtype=int)
        return Paired(self.tuned.subset(rows), self.other.subset(rows),
                      None if self.tuned_right is None else self.tuned_right[pick],
                      None if self.other_right is None else self.other_right[pick])


def check(name: str, status: str, reason: str, **numbers) -> dict:
    """One entry of gate.json's ``checks``."""
    return {"name": name, "title": TITLES[name], "status": status, "reason": reason, **numbers}


def comparison_check(name: str, other: str, described: str, pairs: dict[str, Paired | None], requirement: str,
                     metric: str, higher_is_better: bool, settings: GateConfig) -> dict:
    """A comparison of the tuned model with ``other`` (named in the reason as ``described``) on ``metric``:
    ``pairs["all"]`` on every test row, ``pairs["unleaked"]`` (None when no row leaked) on the unleaked rows.
    ``requirement`` is `tunesmith.config.gate_section.Requirement` (``off``: skipped)."""
    if requirement == "off":
        return check(name, "skipped", f"gate.{name} is off", requirement=requirement, other=other)
    margin = margin_in_units(settings.margin, metric)
    threshold = 0.0 if requirement == "better" else (-margin if higher_is_better else margin)
    subsets = {subset: None if paired is None else _subset_figures(paired, settings)
               for subset, paired in pairs.items()}
    judged = {subset: _meets(figures["interval"], requirement, threshold, higher_is_better)
              for subset, figures in subsets.items() if figures is not None}
    passed = all(judged.values())
    everything = subsets["all"]
    parts = [f"{metric} {_signed(everything['difference'])} {_interval(everything['interval'])} over {described} "
             f"on {everything['rows']:,} rows{_mcnemar_text(everything['mcnemar'])}"]
    if subsets.get("unleaked") is not None:
        unleaked = subsets["unleaked"]
        parts.append(f"{_signed(unleaked['difference'])} {_interval(unleaked['interval'])} on the "
                     f"{unleaked['rows']:,} unleaked rows")
    wanted = _requirement_text(requirement, threshold, higher_is_better,
                               scaled_margin_text(settings.margin, metric) or "gate.margin")
    failing = [subset for subset, ok in judged.items() if not ok]
    if failing:
        where = " and ".join("every row" if subset == "all" else "the unleaked rows" for subset in failing)
        wanted += f" (not met on {where})"
    return check(name, "passed" if passed else "failed", "; ".join(parts) + f"; required: {wanted}",
                 requirement=requirement, other=other, threshold=threshold, value=everything["difference"],
                 subsets=subsets)


def preference_check(block: dict, pairs: list[dict] | None, settings: GateConfig) -> dict:
    """A preference run's accuracy on its held-out pairs (eval.json's ``preference``) against its reference model's
    own ranking of the same pairs, paired pair by pair (``pairs``: preference_pairs.jsonl's lines, each with the
    tuned ``margin`` and the ``reference_margin``; a pair is ranked right when its margin is above 0)."""
    requirement = settings.preference_accuracy
    if requirement == "off":
        return check("preference_accuracy", "skipped", "gate.preference_accuracy is off", requirement=requirement,
                     other="reference")
    if "skipped" in block:
        return check("preference_accuracy", "failed", f"not measured: {block['skipped']} (or set "
                     "gate.preference_accuracy: off)", requirement=requirement, other="reference")
    if pairs is None or len(pairs) != block.get("pairs"):
        return check("preference_accuracy", "failed", "preference_pairs.jsonl does not hold the evaluated pairs: run "
                     "`tunesmith eval RUN` again", requirement=requirement, other="reference")
    tuned = np.asarray([row["margin"] > 0 for row in pairs], dtype=bool)
    reference = np.asarray([row["reference_margin"] > 0 for row in pairs], dtype=bool)
    ones = np.ones(len(pairs))
    paired = Paired(ratio_statistics(tuned.astype(float), ones), ratio_statistics(reference.astype(float), ones),
                    tuned, reference)
    return comparison_check("preference_accuracy", "reference", "the reference's ranking", {"all": paired},
                            requirement, "preference accuracy", True, settings)


def _subset_figures(paired: Paired, settings: GateConfig) -> dict:
    difference, interval = paired_bootstrap(paired.tuned, paired.other, settings.confidence, settings.resamples,
                                            settings.seed)
    test = None
    if paired.tuned_right is not None and paired.other_right is not None:
        tuned_only = int(np.sum(paired.tuned_right & ~paired.other_right))
        other_only = int(np.sum(paired.other_right & ~paired.tuned_right))
        test = {"p_value": mcnemar(tuned_only, other_only), "tuned_only_right": tuned_only,
                "other_only_right": other_only}
    return {"rows": len(paired.tuned.values), "tuned": _number(paired.tuned.metric()),
            "other": _number(paired.other.metric()), "difference": _number(difference), "interval": interval,
            "mcnemar": test}


def _meets(interval: list[float] | None, requirement: str, threshold: float, higher_is_better: bool) -> bool:
    """Whether the whole interval clears the threshold on the good side (an undefined interval never does)."""
    if interval is None:
        return False
    low, high = interval
    return low > threshold if higher_is_better else high < threshold


def _requirement_text(requirement: str, threshold: float, higher_is_better: bool, margin: str) -> str:
    side = "above" if higher_is_better else "below"
    if requirement == "better":
        return f"better (the interval {side} 0)"
    return f"not worse (the interval {side} {_signed(threshold)}, {margin})"


def _mcnemar_text(test: dict | None) -> str:
    if test is None:
        return ""
    p_value = test["p_value"]
    if 0 < p_value < 1e-4:
        return f" (McNemar p < 1e{math.floor(math.log10(p_value)) + 1})"
    return f" (McNemar p {'< 1e-300' if p_value == 0 else f'= {p_value:.2g}'})"


def calibration_check(task: str, calibration: dict | None, settings: GateConfig) -> dict:
    """The tuned model's expected calibration error after temperature scaling, as evaluation measured it on the
    test rows (eval.json's ``calibration``)."""
    if task != "classification":
        return check("calibration", "skipped", f"a {task} task has no label probabilities to calibrate")
    if not calibration or "after" not in calibration:
        reason = (calibration or {}).get("skipped") or "the evaluation measured no calibration"
        return check("calibration", "skipped", f"not measured: {reason}")
    after = calibration["after"]
    value, interval = after["ece"], after.get("ece_interval")
    text = (f"ECE {value:.4f} {_interval(interval, '.4f')} after temperature scaling "
            f"(T = {calibration['temperature']:.3g}; {calibration['before']['ece']:.4f} before) on "
            f"{after['rows']:,} rows")
    status, text = _against_ceiling(value, settings.max_ece, text, "gate.max_ece", ".4f")
    return check("calibration", status, text, value=value, interval=interval, threshold=settings.max_ece,
                 rows=after["rows"], before=calibration["before"]["ece"], temperature=calibration["temperature"])


def valid_output_check(task: str, labels: list[str] | None, answers: list[str], locations: list[str],
                       schema: dict | None, settings: GateConfig) -> dict:
    """The share of the tuned model's test answers that are valid: one of the labels, a number, or (generation
    with `evaluate.output_schema`) a JSON document matching the schema."""
    if task == "generation" and schema is None:
        return check("valid_output", "skipped", "any text answers a generation task without evaluate.output_schema")
    rule, valid = _validity(task, labels, schema)
    invalid = [index for index, answer in enumerate(answers) if not valid(answer)]
    value = 1 - len(invalid) / len(answers) if answers else None
    text = f"{value:.2%} of {len(answers):,} answers are {rule}" if answers else "no answers"
    status, text = _against_floor(value, settings.min_valid_output, text, "gate.min_valid_output", ".2%")
    examples = [{"location": locations[index], "answer": answers[index]} for index in invalid[:MAX_EXAMPLES]]
    return check("valid_output", status, text, value=value, rows=len(answers), invalid=len(invalid),
                 threshold=settings.min_valid_output, rule=rule, examples=examples)


def _validity(task: str, labels: list[str] | None, schema: dict | None):
    """``(rule, is_valid)`` of the task's answers."""
    if task == "classification":
        known = set(labels or [])
        return "one of the labels", lambda answer: answer in known
    if task == "regression":
        return "a number", lambda answer: parse_number(answer) is not None
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)

    def matches(answer: str) -> bool:
        try:
            document = json.loads(answer)
        except ValueError:
            return False
        return validator.is_valid(document)

    return "matches evaluate.output_schema", matches


def general_check(measured: dict | None, settings: GateConfig) -> dict:
    """General ability kept (`tunesmith.gate.general.general_ability`'s measurement, None when gate.general_rows is
    0): the kept share of the base's ability, the agreement with its greedy answers, lm-evaluation-harness scores
    kept, each against its threshold."""
    if measured is None:
        return check("general_ability", "skipped", "gate.general_rows is 0")
    kept, agreement = measured["kept"], measured["agreement"]
    text = (f"kept {kept:.1%} {_interval(measured.get('kept_interval'), '.1%')} of the base's general ability "
            f"(answer loss {measured['base_loss']:.3f} -> {measured['tuned_loss']:.3f}), agreement "
            f"{agreement:.1%} {_interval(measured.get('agreement_interval'), '.1%')} with its greedy answers, on "
            f"{measured['rows']:,} general prompts")
    failures, judged = [], False
    for value, floor, what in [(kept, settings.min_general_kept, "gate.min_general_kept"),
                               (agreement, settings.min_general_agreement, "gate.min_general_agreement")]:
        if floor is not None:
            judged = True
            if value < floor:
                failures.append(f"{value:.1%} is below {what} {floor:.1%}")
    lm_eval = measured.get("lm_eval")
    if lm_eval is not None:
        lm_eval = {**lm_eval, "threshold": settings.min_lm_eval_kept}
        text += "; lm-eval " + ", ".join(f"{name} {task['kept']:.1%} kept" for name, task in lm_eval["tasks"].items())
        if settings.min_lm_eval_kept is not None:
            judged = True
            failures += [f"lm-eval {name} kept {task['kept']:.1%}, below gate.min_lm_eval_kept "
                         f"{settings.min_lm_eval_kept:.1%}" for name, task in lm_eval["tasks"].items()
                         if task["kept"] < settings.min_lm_eval_kept]
    status = "failed" if failures else "passed" if judged else "measured"
    reason = text + ("; " + "; ".join(failures) if failures else "" if judged else "; no threshold set")
    return check("general_ability", status, reason, **{**measured, "lm_eval": lm_eval, "value": kept,
                                                       "threshold": settings.min_general_kept,
                                                       "agreement_threshold": settings.min_general_agreement})


def latency_check(seconds: list[float], device: str | None, settings: GateConfig) -> dict:
    """The tuned model's seconds per answer, one test row at a time (the 50th and 95th percentiles)."""
    if not seconds:
        return check("latency", "skipped", "gate.latency_rows is 0" if settings.latency_rows == 0
                     else "the test split has no rows")
    p50, p95 = (float(value) for value in np.percentile(seconds, [50, 95]))
    text = f"p95 {p95:.3f}s, p50 {p50:.3f}s over {len(seconds)} answers one at a time on {device}"
    status, text = _against_ceiling(p95, settings.max_p95_latency_s, text, "gate.max_p95_latency_s", ".3f")
    return check("latency", status, text, value=p95, p50=p50, requests=len(seconds),
                 threshold=settings.max_p95_latency_s, device=device)


def export_size_check(sizes: dict[str, float], folder: str, settings: GateConfig) -> dict:
    """The size in MiB of what serving the run loads: ``sizes[folder]`` (the adapter, else the merged model, else
    the best checkpoint's weights when the run was not exported)."""
    value = sizes[folder]
    text = f"{folder} {value:,.1f} MiB" + "".join(f", {name} {size:,.1f} MiB" for name, size in sizes.items()
                                                  if name != folder)
    status, text = _against_ceiling(value, settings.max_export_mb, text, "gate.max_export_mb", ",.1f")
    return check("export_size", status, text, value=value, folder=folder, threshold=settings.max_export_mb,
                 sizes=sizes)


def _against_ceiling(value: float, ceiling: float | None, text: str, key: str, spec: str) -> tuple[str, str]:
    if ceiling is None:
        return "measured", f"{text}; no threshold set ({key})"
    return ("passed" if value <= ceiling else "failed"), f"{text}; required: at most {ceiling:{spec}} ({key})"


def _against_floor(value: float | None, floor: float | None, text: str, key: str, spec: str) -> tuple[str, str]:
    if floor is None:
        return "measured", f"{text}; no threshold set ({key})"
    passed = value is not None and value >= floor
    return ("passed" if passed else "failed"), f"{text}; required: at least {floor:{spec}} ({key})"


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _signed(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.3g}"


def _interval(interval: list[float] | None, spec: str | None = None) -> str:
    if interval is None:
        return "[no interval]"
    low, high = interval
    if spec is None:
        return f"[{low:+.3g}, {high:+.3g}]"
    return f"[{low:{spec}}, {high:{spec}}]"
