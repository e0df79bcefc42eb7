"""Task metrics as pure functions on plain Python lists (no models, no files).

Built on scikit-learn (classification), scipy (Pearson), sacrebleu (BLEU) and rouge-score (ROUGE-L), so the
numbers match what those reference implementations report elsewhere. Each is imported by the metric that needs
it: together they take seconds to import, and a classification run never uses three of them.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

from tunesmith.config.vocabulary import TASK_METRICS
from tunesmith.text import normalize_text

OTHER_LABEL = "<other>"
"""Confusion-matrix column for generated answers that are none of the labels (generate mode)."""

CLASSIFICATION_METRICS = TASK_METRICS["classification"]
REGRESSION_METRICS = TASK_METRICS["regression"]
GENERATION_METRICS = TASK_METRICS["generation"]

_PUNCTUATION_CHARS = set(string.punctuation)

# Signed integers, decimals (".5", "3."), and exponents; the first match in the text is the answer.
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def classification_metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix (rows true, cols predicted).

    A prediction that is none of ``labels`` counts as wrong; such predictions get one extra ``<other>``
    column (and row, all zeros) in the confusion matrix, added only when they occur.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    unknown_truth = sorted(set(y_true) - set(labels))
    if unknown_truth:
        raise ValueError(f"true labels {unknown_truth} are not in the label set {labels}")
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not y_true:
        return {name: None for name in CLASSIFICATION_METRICS} | {
            "per_class": {}, "confusion_matrix": {"labels": list(labels), "matrix": []},
        }
    known = set(labels)
    predicted = [label if label in known else OTHER_LABEL for label in y_pred]
    matrix_labels = list(labels) + ([OTHER_LABEL] if OTHER_LABEL in predicted else [])
    # `labels=` keeps `<other>` out of the macro average: it is a kind of mistake, not a class to score.
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, predicted, labels=list(labels), average="macro", zero_division=0
    )
    per_precision, per_recall, per_f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=list(labels), average=None, zero_division=0
    )
    per_class = {
        label: {
            "precision": float(per_precision[i]), "recall": float(per_recall[i]), "f1": float(per_f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    matrix = confusion_matrix(y_true, predicted, labels=matrix_labels)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "per_class": per_class,
        "confusion_matrix": {"labels": matrix_labels, "matrix": matrix.tolist()},
    }


def regression_metrics(y_true: list[float], y_pred: list[float | None]) -> dict:
    """MSE, MAE and Pearson r over the parseable predictions; ``parse_failures`` counts the ``None`` ones.

    Pearson is ``None`` when fewer than two pairs remain or either side is constant (r is undefined there).
    """
    from scipy.stats import pearsonr

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} targets but {len(y_pred)} predictions")
    pairs = [(float(true), float(pred)) for true, pred in zip(y_true, y_pred) if pred is not None]
    failures = len(y_true) - len(pairs)
    if not pairs:
        return {"mse": None, "mae": None, "pearson": None, "parse_failures": failures}
    errors = [pred - true for true, pred in pairs]
    trues = [true for true, _ in pairs]
    preds = [pred for _, pred in pairs]
    defined = len(pairs) >= 2 and len(set(trues)) > 1 and len(set(preds)) > 1
    return {
        "mse": sum(error * error for error in errors) / len(errors),
        "mae": sum(abs(error) for error in errors) / len(errors),
        "pearson": float(pearsonr(trues, preds).statistic) if defined else None,
        "parse_failures": failures,
    }


def generation_metrics(references: list[str] | list[list[str]], predictions: list[str]) -> dict:
    """Corpus BLEU (sacrebleu, 0–100), mean ROUGE-L F-measure (stemmed, 0–1) and exact match (0–1).

    ``references`` holds one string per prediction, or a list of acceptable strings per prediction (e.g.
    DialogSum's three summaries): ROUGE-L and exact match then take the best reference, BLEU uses them all.
    """
    import sacrebleu

    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not predictions:
        return {name: None for name in GENERATION_METRICS}
    reference_lists = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    # sacrebleu wants one stream per reference slot; rows with fewer references leave None in the later slots.
    slots = max(len(refs) for refs in reference_lists)
    streams = [[refs[slot] if slot < len(refs) else None for refs in reference_lists] for slot in range(slots)]
    rouge = rouge_l_scores(reference_lists, predictions)
    exact = [exact_match(refs, pred) for refs, pred in zip(reference_lists, predictions)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(predictions), streams).score),
        "rouge_l": sum(rouge) / len(rouge),
        "exact_match": sum(exact) / len(exact),
    }


def rouge_l_scores(reference_lists: Sequence[Sequence[str]], predictions: Sequence[str]) -> list[float]:
    """Each prediction's ROUGE-L F-measure (stemmed, 0–1) against the best of its references: the row scores
    whose mean is `generation_metrics`' ``rouge_l`` (the gate's paired differences use them too)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score_multi(list(references), prediction)["rougeL"].fmeasure
            for references, prediction in zip(reference_lists, predictions)]


def exact_match(references: list[str], prediction: str) -> bool:
    """Whether the normalized prediction equals any normalized reference."""
    normalized = normalize_text(prediction)
    return any(normalize_text(reference) == normalized for reference in references)


# ---- extractive QA: SQuAD's official normalization and scores (squad v1.1 evaluate script) ---------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalize(text: str) -> str:
    """Lower case, punctuation and the articles a/an/the removed, whitespace collapsed: the normalization of
    SQuAD's evaluation script, so "The Panthers." and "panthers" are the same answer."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION_CHARS)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact_match(references: list[str], prediction: str) -> bool:
    normalized = squad_normalize(prediction)
    return any(squad_normalize(reference) == normalized for reference in references)


def token_f1(references: list[str], prediction: str) -> float:
    """The best, over references, F1 of the bag of normalized tokens of prediction and reference."""
    predicted = squad_normalize(prediction).split()
    best = 0.0
    for reference in references:
        wanted = squad_normalize(reference).split()
        common = sum((Counter(predicted) & Counter(wanted)).values())
        if not predicted or not wanted:
            best = max(best, float(predicted == wanted))
        elif common:
            precision, recall = common / len(predicted), common / len(wanted)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def qa_metrics(references: list[str] | list[list[str]], predictions: list[str]) -> dict:
    """Mean SQuAD exact match and token F1 (0-1) of predictions against one or several references each."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not predictions:
        return {"squad_em": None, "squad_f1": None}
    lists = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    return {
        "squad_em": sum(squad_exact_match(refs, pred) for refs, pred in zip(lists, predictions)) / len(lists),
        "squad_f1": sum(token_f1(refs, pred) for refs, pred in zip(lists, predictions)) / len(lists),
    }


def parse_number(text: str) -> float | None:
    """The first number written in ``text`` (e.g. ``"Score: 3.8/5"`` → 3.8); ``None`` if there is none."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group())
    return value if math.isfinite(value) else None
