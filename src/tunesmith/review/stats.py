"""`tunesmith review stats`: what the judgments say, with their uncertainty.

The unit is the item (one prompt and one pair of models), not the judgment: an item on the overlap is judged by
several people, and counting each of their judgments would weigh it several times and make the intervals and the
sign test claim more independent evidence than there is. An item's outcome for the tuned model is the sign of its
judgments' sum (+1 a win, -1 a loss, 0 a tie or both bad); a zero sum is "both bad" when most of its judgments
said so, else a tie. Rubric means and Bradley-Terry strengths use every judgment (the means' t-intervals treat
the scores as independent; no interval is claimed for the strengths). Judge models (`tunesmith.review.judge`) are
reported on their own, beside their agreement with the people.

Reference implementations where they exist: Cohen's kappa from scikit-learn; the sign test, Wilson intervals and
t-intervals from scipy. Fleiss' kappa is its textbook formula over a numpy table (a few lines; the library that
offers it, statsmodels, would be a dependency for this one function). Each library is imported by the function
that needs it: the run report imports this module for every run, reviewed or not.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable

from tunesmith.results.intervals import wilson_interval
from tunesmith.review.store import Item, Judgment, ReviewStore
from tunesmith.text import count_of

CONFIDENCE = 0.95
DISAGREEMENTS_LISTED = 5
KAPPA_MIN_ITEMS = 20
"""Below this many shared items a kappa is shown with "too few to judge agreement". Why 20: kappa's standard error
is about sqrt(p_o (1 - p_o) / n) / (1 - p_e); for typical review numbers (observed agreement 0.7-0.8, chance
agreement 0.4-0.5) that puts the 95% interval's half-width at 0.35-0.45 on 20 items (and 0.8 or more on 3):
wider than any band of the usual reading (0.2 wide: "fair", "moderate", "substantial"), so a smaller sample
cannot tell poor agreement from good. 20 is also where the textbook normal approximation begins to hold for
two raters and a few categories."""
CATEGORIES = ("first", "second", "tie", "both_bad")
"""A verdict relative to the item's models (not to the sides one reviewer saw), so reviewers can be compared."""


def review_stats(store: ReviewStore) -> dict:
    """Every statistic of the review as JSON-ready values (see the module docstring)."""
    items = {item.item_id: item for item in store.items()}
    judgments = store.judgments()
    humans = [judgment for judgment in judgments if judgment.reviewer_kind == "human"]
    models = store.models
    tuned = store.tuned
    others = [model for model in models if model != tuned]
    return {
        "tuned": tuned,
        "models": models,
        "judgments": len(humans),
        "sampling": store.settings.get("sampling"),
        "reviewers": dict(Counter(judgment.reviewer for judgment in humans)),
        "comparisons": [comparison(humans, items, tuned, other) for other in others],
        "rubric": rubric_means(humans, list(models), store.rubric),
        "rubric_interval": f"t-interval, {CONFIDENCE:.0%}, over every score an answer got",
        "agreement": human_agreement(humans, items, store.reviewers),
        "bradley_terry": bradley_terry(pairwise_outcomes(humans), list(models)) if len(models) > 2 else None,
        "disagreements": disagreements(humans, items),
        "judges": {judge: judge_stats([j for j in judgments if j.reviewer == judge], humans, items, tuned, others)
                   for judge in store.judges},
    }


# ---- win / tie / loss -------------------------------------------------------------------------------------------


def category(judgment: Judgment, item: Item) -> str:
    """The judgment's verdict as one of `CATEGORIES`."""
    if judgment.winner is None:
        return judgment.verdict
    return "first" if judgment.winner == item.first else "second"


def item_outcome(judgments: list[Judgment], model: str) -> str:
    """``win``, ``loss``, ``tie`` or ``both_bad`` for ``model`` on one item, over its judgments (module docstring)."""
    total = sum((judgment.winner == model) - (judgment.winner not in (model, None)) for judgment in judgments)
    if total:
        return "win" if total > 0 else "loss"
    both_bad = sum(judgment.verdict == "both_bad" for judgment in judgments)
    return "both_bad" if both_bad * 2 > len(judgments) else "tie"


def comparison(judgments: list[Judgment], items: dict[int, Item], model: str, other: str) -> dict:
    """Win / loss / tie of ``model`` against ``other`` over the items comparing the two (both-bad counted on its
    own), the win rate over the decisive items (wins + losses) with its Wilson interval, and the two-sided sign
    test: the p-value of "neither model is better" given the wins and losses.

    Why ties are left out of the rate: "how often is the tuned model preferred when people prefer one" is the
    question, and it is the sign test's too. Ties in the denominator made 9 wins to 1 loss with 16 ties read
    34.6%, a number that says "worse than a coin flip" about a model that won 9 of 10 decisions; the ties and
    both-bad counts are reported beside the rate instead, where they say how often the two were told apart."""
    from scipy.stats import binomtest

    by_item: dict[int, list[Judgment]] = {}
    for judgment in judgments:
        if {items[judgment.item_id].first, items[judgment.item_id].second} == {model, other}:
            by_item.setdefault(judgment.item_id, []).append(judgment)
    counts = Counter(item_outcome(group, model) for group in by_item.values())
    wins, losses = counts["win"], counts["loss"]
    decisive = wins + losses
    return {
        "against": other, "items": len(by_item), "wins": wins, "losses": losses, "ties": counts["tie"],
        "both_bad": counts["both_bad"], "decisive": decisive,
        "win_rate": wins / decisive if decisive else None, "win_interval": wilson(wins, decisive),
        "sign_test_p": binomtest(wins, decisive, 0.5).pvalue if decisive else None,
    }


def wilson(successes: int, trials: int) -> list[float] | None:
    """The Wilson score interval (`CONFIDENCE`) of a proportion; None without trials."""
    return wilson_interval(successes, trials, CONFIDENCE)


# ---- rubric scores ----------------------------------------------------------------------------------------------


def rubric_means(judgments: list[Judgment], models: list[str], rubric: list[str]) -> dict:
    """``{model: {criterion: {n, mean, interval}}}`` over every score the model's answers got."""
    return {model: {criterion: mean_interval([judgment.scores_of(model)[criterion] for judgment in judgments
                                              if criterion in judgment.scores_of(model)])
                    for criterion in rubric}
            for model in models}


def mean_interval(values: list[float]) -> dict:
    """The mean and its t-interval (`CONFIDENCE`); the interval is None below two values."""
    from scipy.stats import t

    n = len(values)
    if not n:
        return {"n": 0, "mean": None, "interval": None}
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "interval": None}
    sem = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1) / n)
    half = float(t.ppf((1 + CONFIDENCE) / 2, n - 1)) * sem
    return {"n": n, "mean": mean, "interval": [mean - half, mean + half]}


# ---- agreement --------------------------------------------------------------------------------------------------


def human_agreement(judgments: list[Judgment], items: dict[int, Item], reviewers: list[str]) -> dict:
    """Cohen's kappa for two reviewers, Fleiss' kappa for three or more, on the items every reviewer judged."""
    if len(reviewers) < 2:
        return {"method": None, "kappa": None, "items": 0, "observed": None,
                "note": "one reviewer: agreement needs two or more"}
    ratings: dict[int, dict[str, str]] = {}
    for judgment in judgments:
        ratings.setdefault(judgment.item_id, {})[judgment.reviewer] = category(judgment, items[judgment.item_id])
    shared = [[rated[reviewer] for reviewer in reviewers] for rated in ratings.values() if len(rated) == len(reviewers)]
    method = "cohen" if len(reviewers) == 2 else "fleiss"
    kappa = cohen_kappa([row[0] for row in shared], [row[1] for row in shared]) if method == "cohen" \
        else fleiss_kappa(shared)
    observed = sum(len(set(row)) == 1 for row in shared) / len(shared) if shared else None
    note = small_sample_note(len(shared))
    if kappa is None:
        note = "not defined: too few shared items, or one verdict throughout"
    return {"method": method, "kappa": kappa, "items": len(shared), "observed": observed, "note": note,
            "too_few": len(shared) < KAPPA_MIN_ITEMS}


def small_sample_note(shared: int, unit: str = "shared item") -> str | None:
    """"on 3 shared items: too few to judge agreement" below `KAPPA_MIN_ITEMS`, else None."""
    if shared >= KAPPA_MIN_ITEMS:
        return None
    return f"on {count_of(shared, unit)}: too few to judge agreement ({KAPPA_MIN_ITEMS} or more needed)"


def cohen_kappa(first: list[Hashable], second: list[Hashable]) -> float | None:
    """Cohen's kappa of two raters' paired ratings; None when undefined (no pairs, or chance agreement of 1)."""
    from sklearn.metrics import cohen_kappa_score

    if not first or len(set(first) | set(second)) < 2:
        return None
    return float(cohen_kappa_score([str(value) for value in first], [str(value) for value in second]))


def fleiss_kappa(ratings: list[list[Hashable]]) -> float | None:
    """Fleiss' kappa of items each rated by the same number of raters (one list of ratings per item); None when
    undefined. With n raters per item and n_ij of them choosing category j on item i: P_i = (sum_j n_ij^2 - n) /
    (n(n - 1)) is item i's agreement, p_j the category's share of all ratings, and kappa = (mean P_i - sum_j p_j^2)
    / (1 - sum_j p_j^2)."""
    import numpy as np

    if not ratings or len({value for row in ratings for value in row}) < 2:
        return None
    categories = sorted({str(value) for row in ratings for value in row})
    table = np.array([[[str(value) for value in row].count(category) for category in categories] for row in ratings],
                     dtype=float)
    raters = table[0].sum()
    agreement = ((table**2).sum(axis=1) - raters) / (raters * (raters - 1))
    chance = ((table.sum(axis=0) / table.sum()) ** 2).sum()
    return float((agreement.mean() - chance) / (1 - chance))


def judge_stats(judged: list[Judgment], humans: list[Judgment], items: dict[int, Item], tuned: str,
                others: list[str]) -> dict:
    """A judge model's own win/tie/loss, and its agreement with the people: Cohen's kappa over every (human
    judgment, judge judgment) pair on the same item."""
    by_item = {judgment.item_id: category(judgment, items[judgment.item_id]) for judgment in judged}
    pairs = [(category(human, items[human.item_id]), by_item[human.item_id]) for human in humans
             if human.item_id in by_item]
    return {
        "judgments": len(judged),
        "comparisons": [comparison(judged, items, tuned, other) for other in others],
        "agreement_with_humans": {
            "kappa": cohen_kappa([human for human, _ in pairs], [judge for _, judge in pairs]), "pairs": len(pairs),
            "observed": sum(human == judge for human, judge in pairs) / len(pairs) if pairs else None,
            "note": small_sample_note(len(pairs), "shared judgment"), "too_few": len(pairs) < KAPPA_MIN_ITEMS,
        },
    }


def disagreements(judgments: list[Judgment], items: dict[int, Item]) -> list[dict]:
    """The items the people disagreed on most: share of judgments that differ from the most common verdict, then
    the number of different verdicts. Verdicts are named by model."""
    by_item: dict[int, list[Judgment]] = {}
    for judgment in judgments:
        by_item.setdefault(judgment.item_id, []).append(judgment)
    ranked = []
    for item_id, group in by_item.items():
        categories = Counter(category(judgment, items[item_id]) for judgment in group)
        share = 1 - max(categories.values()) / len(group)
        if share > 0:
            ranked.append((share, len(categories), item_id, group))
    ranked.sort(key=lambda entry: (-entry[0], -entry[1], entry[2]))
    return [{"item_id": item_id, "location": items[item_id].location, "prompt": items[item_id].prompt,
             "models": [items[item_id].first, items[item_id].second], "disagreement": share,
             "verdicts": {judgment.reviewer: verdict_text(judgment) for judgment in group},
             "comments": {judgment.reviewer: judgment.comment for judgment in group if judgment.comment}}
            for share, _, item_id, group in ranked[:DISAGREEMENTS_LISTED]]


def verdict_text(judgment: Judgment) -> str:
    return f"{judgment.winner} better" if judgment.winner else {"tie": "tie", "both_bad": "both bad"}[judgment.verdict]


# ---- Bradley-Terry ----------------------------------------------------------------------------------------------


def pairwise_outcomes(judgments: Iterable[Judgment]) -> list[tuple[str, str, float]]:
    """``(model, other, wins of model)`` per judgment: 1 or 0, and a half each for a tie or both bad."""
    outcomes = []
    for judgment in judgments:
        score = 0.5 if judgment.winner is None else float(judgment.winner == judgment.model_a)
        outcomes.append((judgment.model_a, judgment.model_b, score))
    return outcomes


def bradley_terry(outcomes: list[tuple[str, str, float]], models: list[str], iterations: int = 10_000,
                  tolerance: float = 1e-12) -> dict[str, float] | None:
    """Bradley-Terry strengths (summing to 1; P(i beats j) = p_i / (p_i + p_j)) by Hunter's (2004) MM updates,
    p_i <- W_i / sum_j n_ij / (p_i + p_j), which increase the likelihood at every step. Written here rather than
    taken from a library: the update is three lines, and the packages that offer it (choix) are little kept and
    would pull in more than they save. Ties count as half a win each way. None without outcomes."""
    if not outcomes:
        return None
    wins = dict.fromkeys(models, 0.0)
    games: Counter = Counter()
    for model, other, score in outcomes:
        wins[model] += score
        wins[other] += 1 - score
        games[model, other] += 1
        games[other, model] += 1
    strength = dict.fromkeys(models, 1 / len(models))
    for _ in range(iterations):
        updated = {}
        for model in models:
            denominator = sum(count / (strength[model] + strength[other])
                              for (first, other), count in games.items() if first == model)
            updated[model] = wins[model] / denominator if denominator else strength[model]
        total = sum(updated.values())
        updated = {model: value / total for model, value in updated.items()}
        change = max(abs(updated[model] - strength[model]) for model in models)
        strength = updated
        if change < tolerance:
            break
    return strength
