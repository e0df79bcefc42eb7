"""The loop's before/after table: round 1's and round 2's accuracy on the same rows, each with its Wilson 95%
interval, and the difference with its paired bootstrap 95% interval and McNemar's exact p-value."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from scipy.stats import binomtest

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Comparison:
    """Two models' answers to the same rows, judged right or wrong."""

    name: str
    rows: int
    before: float
    before_interval: list[float]
    after: float
    after_interval: list[float]
    difference: float
    difference_interval: list[float] | None
    before_only_right: int
    after_only_right: int
    mcnemar_p: float


def compare(name: str, truths: list[str], before: list[str], after: list[str]) -> Comparison:
    """Round 1's (``before``) and round 2's (``after``) answers to the rows whose labels are ``truths``."""
    from tunesmith.gate.stats import mcnemar, metric_statistics, paired_bootstrap

    if not (len(truths) == len(before) == len(after)) or not truths:
        raise ValueError(f"{name}: {len(truths)} truths, {len(before)} and {len(after)} answers")
    right_before = [t == p for t, p in zip(truths, before)]
    right_after = [t == p for t, p in zip(truths, after)]
    difference, interval = paired_bootstrap(metric_statistics("accuracy", truths, after),
                                            metric_statistics("accuracy", truths, before),
                                            CONFIDENCE, RESAMPLES, SEED)
    after_only = sum(a and not b for a, b in zip(right_after, right_before))
    before_only = sum(b and not a for a, b in zip(right_after, right_before))
    return Comparison(name=name, rows=len(truths),
                      before=sum(right_before) / len(truths), before_interval=wilson(sum(right_before), len(truths)),
                      after=sum(right_after) / len(truths), after_interval=wilson(sum(right_after), len(truths)),
                      difference=difference, difference_interval=interval,
                      before_only_right=before_only, after_only_right=after_only,
                      mcnemar_p=mcnemar(after_only, before_only))


def wilson(right: int, rows: int) -> list[float]:
    low, high = binomtest(right, rows).proportion_ci(CONFIDENCE, method="wilson")
    return [float(low), float(high)]


def test_set_answers(before_predictions: Path, after_predictions: Path) -> tuple[list[str], list[str], list[str]]:
    """``(truths, round 1's answers, round 2's answers)`` from two runs' `predictions.jsonl`, row by row; both runs
    evaluated the same test file, so the rows must be the same (location and prompt)."""
    before = _read(before_predictions)
    after = _read(after_predictions)
    keys = [(row["location"], row["prompt"]) for row in before]
    if keys != [(row["location"], row["prompt"]) for row in after]:
        raise ValueError(f"{before_predictions} and {after_predictions} score different test rows")
    return ([row["reference"] for row in before], [row["tuned_prediction"] for row in before],
            [row["tuned_prediction"] for row in after])


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def render(comparisons: list[Comparison], before_run: str, after_run: str) -> str:
    """A Markdown table, one line per comparison."""
    lines = [f"| rows | n | {before_run} (served first) | {after_run} (promoted) | difference | McNemar p |",
             "|---|---:|---:|---:|---:|---:|"]
    for c in comparisons:
        interval = ("no interval" if c.difference_interval is None
                    else f"[{c.difference_interval[0]:+.3f}, {c.difference_interval[1]:+.3f}]")
        lines.append(f"| {c.name} | {c.rows:,} | {_share(c.before, c.before_interval)} | "
                     f"{_share(c.after, c.after_interval)} | {c.difference:+.3f} {interval} | {c.mcnemar_p:.2g} |")
    lines.append("")
    lines.append(f"Accuracy with Wilson {CONFIDENCE:.0%} intervals; the difference (round 2 − round 1) with its paired "
                 f"bootstrap {CONFIDENCE:.0%} interval ({RESAMPLES:,} resamples, seed {SEED}, "
                 "`tunesmith.gate.stats.paired_bootstrap`) and McNemar's exact p-value on the rows one model answers "
                 "right and the other wrong.")
    return "\n".join(lines)


def _share(value: float, interval: list[float]) -> str:
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def write(out: Path, comparisons: list[Comparison], before_run: str, after_run: str) -> str:
    """Writes `before_after.md` and `before_after.json` into ``out``; returns the table."""
    table = render(comparisons, before_run, after_run)
    (out / "before_after.md").write_text(table + "\n", encoding="utf-8")
    (out / "before_after.json").write_text(json.dumps(
        {"before": before_run, "after": after_run, "confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": SEED,
         "comparisons": [asdict(c) for c in comparisons]}, indent=2) + "\n", encoding="utf-8")
    return table
