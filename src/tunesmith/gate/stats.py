"""The gate's statistics: a paired bootstrap interval of the difference of a metric between two models' answers to
the same rows, and McNemar's test of two classifiers' paired right/wrong answers.

Every task metric is written as a function of sums of per-row statistics (`RowStatistics`): the share of right
answers sums one 0/1 per row, macro F1 sums each label's true positives, false positives and false negatives,
Pearson's r sums x, y, x², y² and xy, corpus BLEU sums sacrebleu's n-gram counts and lengths. A bootstrap
resample is a count per row (how often the row was drawn), so one matrix product gives every resample's sums
and the metric is recomputed from them exactly as if it were scored on the resampled rows (a test checks it
against `tunesmith.predict.answers.task_metrics`), for per-row and corpus metrics alike, in milliseconds.

The interval is the percentile interval of the resampled differences; both models are resampled with the same
counts (paired), so what the rows share (their difficulty) cancels out. The seed fixes the resamples: the same
rows and seed give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tunesmith.predict.metrics import OTHER_LABEL, exact_match, parse_number, rouge_l_scores

MAX_CELLS = 4_000_000
"""Resample counts held at once (resamples × rows): the bootstrap runs in chunks below it."""


@dataclass(frozen=True)
class RowStatistics:
    """A metric of a model's answers as a function of sums of per-row statistics: ``values`` holds one row of
    statistics per answer (rows × k), ``score`` maps sums (… × k) to the metric (…); NaN where it is undefined."""

    values: np.ndarray
    score: Callable[[np.ndarray], np.ndarray]

    def metric(self) -> float:
        """The metric on every row once."""
        return float(self.score(self.values.sum(axis=0, keepdims=True))[0])

    def subset(self, rows: Sequence[int]) -> RowStatistics:
        return RowStatistics(self.values[np.asarray(rows, dtype=int)], self.score)


def metric_statistics(metric: str, truths: Sequence, predictions: Sequence[str],
                      labels: Sequence[str] | None = None) -> RowStatistics:
    """The `RowStatistics` of a task metric (`tunesmith.config.vocabulary.TASK_METRICS`) of ``predictions``:
    ``truths`` are the labels (classification: accuracy, precision, recall, f1, with ``labels``), the numbers
    (regression: mse, mae, pearson) or each row's list of acceptable answers (generation: bleu, rouge_l,
    exact_match)."""
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} truths but {len(predictions)} predictions")
    if metric == "accuracy":
        return _mean([truth == prediction for truth, prediction in zip(truths, predictions)])
    if metric in ("precision", "recall", "f1"):
        return _macro(metric, truths, predictions, list(labels or []))
    if metric in ("mse", "mae", "pearson"):
        return _regression(metric, [float(truth) for truth in truths], [parse_number(text) for text in predictions])
    if metric == "exact_match":
        return _mean([exact_match(list(references), prediction) for references, prediction in zip(truths, predictions)])
    if metric == "rouge_l":
        return _mean(rouge_l_scores(truths, predictions))
    if metric == "bleu":
        return _bleu(truths, predictions)
    raise ValueError(f"{metric} is not scored per row (the gate compares accuracy, precision, recall, f1, mse, mae, "
                     "pearson, bleu, rouge_l or exact_match)")


def paired_bootstrap(tuned: RowStatistics, other: RowStatistics, confidence: float, resamples: int,
                     seed: int) -> tuple[float, list[float] | None]:
    """``(difference, [low, high])``: the metric of ``tuned`` minus that of ``other`` on every row, and the
    percentile interval at ``confidence`` of that difference over ``resamples`` paired resamples of the rows
    (seeded). The interval is None when no resample has a defined difference (e.g. Pearson's r of constant
    answers) or there are no rows."""
    rows = len(tuned.values)
    if rows != len(other.values):
        raise ValueError(f"paired rows differ: {rows} and {len(other.values)}")
    difference = tuned.metric() - other.metric() if rows else float("nan")
    return difference, _interval(rows, confidence, resamples, seed,
                                 lambda counts: tuned.score(counts @ tuned.values) - other.score(counts @ other.values))


def bootstrap_interval(statistics: RowStatistics, confidence: float, resamples: int,
                       seed: int) -> list[float] | None:
    """The percentile interval at ``confidence`` of one model's metric over ``resamples`` resamples of its rows
    (seeded); None as `paired_bootstrap` gives it."""
    return _interval(len(statistics.values), confidence, resamples, seed,
                     lambda counts: statistics.score(counts @ statistics.values))


def ratio_statistics(numerators: Sequence[float], denominators: Sequence[float]) -> RowStatistics:
    """A ratio of sums over rows (a mean over tokens when each row holds several: a loss sum and its token count,
    agreed tokens and tokens) as `RowStatistics`; NaN where the denominators sum to 0."""
    return RowStatistics(np.column_stack([np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)]),
                         lambda sums: _ratio(sums[..., 0], sums[..., 1]))


def _interval(rows: int, confidence: float, resamples: int, seed: int,
              statistic: Callable[[np.ndarray], np.ndarray]) -> list[float] | None:
    """The percentile interval of ``statistic`` (resample counts per row → one value per resample) over
    ``resamples`` seeded resamples of ``rows`` rows, drawn in chunks of at most `MAX_CELLS` counts."""
    if rows == 0:
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_CELLS // rows)
    drawn = np.concatenate([
        statistic(rng.multinomial(rows, np.full(rows, 1.0 / rows), size=min(chunk, resamples - start)).astype(float))
        for start in range(0, resamples, chunk)])
    drawn = drawn[np.isfinite(drawn)]
    if not drawn.size:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(drawn, [tail, 100 - tail])
    return [float(low), float(high)]


def mcnemar(tuned_only_right: int, other_only_right: int, exact: bool = True) -> float:
    """McNemar's two-sided p-value from the discordant pairs (rows one model answers right and the other wrong),
    as statsmodels' ``mcnemar`` computes it: exact, twice the binomial tail of the smaller count at p = 1/2
    (capped at 1); else the chi-square statistic with continuity correction, ``(|b - c| - 1)² / (b + c)``, on one
    degree of freedom. Without discordant pairs the models cannot be told apart: 1.0."""
    from scipy.stats import binom, chi2

    discordant = tuned_only_right + other_only_right
    if discordant == 0:
        return 1.0
    if exact:
        return float(min(1.0, 2 * binom.cdf(min(tuned_only_right, other_only_right), discordant, 0.5)))
    statistic = (abs(tuned_only_right - other_only_right) - 1) ** 2 / discordant
    return float(chi2.sf(statistic, 1))


def _mean(per_row: Sequence[float]) -> RowStatistics:
    values = np.column_stack([np.asarray(per_row, dtype=float), np.ones(len(per_row))])
    return RowStatistics(values, lambda sums: _ratio(sums[..., 0], sums[..., 1]))


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


def _macro(metric: str, truths: Sequence[str], predictions: Sequence[str], labels: list[str]) -> RowStatistics:
    """Macro precision, recall or F1 over ``labels`` as scikit-learn computes them with ``zero_division=0``: an
    answer that is none of the labels is a false negative of the truth's label only."""
    known = set(labels)
    predicted = [prediction if prediction in known else OTHER_LABEL for prediction in predictions]
    columns = []
    for label in labels:
        columns += [[truth == label and guess == label for truth, guess in zip(truths, predicted)],
                    [truth != label and guess == label for truth, guess in zip(truths, predicted)],
                    [truth == label and guess != label for truth, guess in zip(truths, predicted)]]
    values = np.asarray(columns, dtype=float).T.reshape(len(truths), 3 * len(labels))

    def score(sums: np.ndarray) -> np.ndarray:
        true_positive, false_positive, false_negative = sums[..., 0::3], sums[..., 1::3], sums[..., 2::3]
        if metric == "precision":
            per_label = _ratio(true_positive, true_positive + false_positive)
        elif metric == "recall":
            per_label = _ratio(true_positive, true_positive + false_negative)
        else:
            per_label = _ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative)
        return np.nan_to_num(per_label, nan=0.0).mean(axis=-1)

    return RowStatistics(values, score)


def _regression(metric: str, targets: list[float], numbers: list[float | None]) -> RowStatistics:
    """MSE, MAE or Pearson's r over the answers that parse as a number (as `regression_metrics` scores them)."""
    parsed = np.asarray([number is not None for number in numbers], dtype=float)
    x = np.asarray(targets, dtype=float) * parsed
    y = np.asarray([number if number is not None else 0.0 for number in numbers], dtype=float)
    if metric in ("mse", "mae"):
        error = (y - x) ** 2 if metric == "mse" else np.abs(y - x)
        return _mean_over(error * parsed, parsed)
    values = np.column_stack([x, y, x * x, y * y, x * y, parsed])

    def pearson(sums: np.ndarray) -> np.ndarray:
        sx, sy, sxx, syy, sxy, n = (sums[..., index] for index in range(6))
        spread = (n * sxx - sx * sx) * (n * syy - sy * sy)
        # A constant side (zero spread, up to rounding) leaves r undefined, as scipy's pearsonr says.
        tiny = 1e-12 * np.maximum(n * sxx, 1.0) * np.maximum(n * syy, 1.0)
        defined = (n >= 2) & (spread > tiny)
        return np.where(defined, (n * sxy - sx * sy) / np.sqrt(np.where(defined, spread, 1.0)), np.nan)

    return RowStatistics(values, pearson)


def _mean_over(per_row: np.ndarray, counted: np.ndarray) -> RowStatistics:
    return RowStatistics(np.column_stack([per_row, counted]), lambda sums: _ratio(sums[..., 0], sums[..., 1]))


def _bleu(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> RowStatistics:
    """sacrebleu's corpus BLEU (its defaults, as `generation_metrics` scores it) from each sentence's n-gram
    counts and lengths: the private helpers used are the ones sacrebleu's own paired bootstrap uses."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    lists = [list(refs) for refs in references]
    slots = max((len(refs) for refs in lists), default=1)
    streams = [[refs[slot] if slot < len(refs) else None for refs in lists] for slot in range(slots)]
    values = np.asarray(bleu._extract_corpus_statistics(list(predictions), streams), dtype=float)

    def score(sums: np.ndarray) -> np.ndarray:
        flat = sums.reshape(-1, sums.shape[-1])
        scores = [bleu._compute_score_from_stats(np.rint(row).astype(int).tolist()).score for row in flat]
        return np.asarray(scores, dtype=float).reshape(sums.shape[:-1])

    return RowStatistics(values.reshape(len(predictions), -1), score)
