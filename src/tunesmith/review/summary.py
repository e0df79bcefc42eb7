"""The review statistics (`tunesmith.review.stats`) as document blocks: what `tunesmith review stats` prints and
the run report's "Human review" section shows."""

from __future__ import annotations

from tunesmith.document import Block, Facts, Table, Text, format_value, plain
from tunesmith.text import count_of, shorten

PROMPT_CHARS = 120
KAPPA_NAMES = {"cohen": "Cohen's kappa", "fleiss": "Fleiss' kappa"}


def stats_blocks(stats: dict) -> list[Block]:
    """Facts about who judged what, then the tables: the tuned model against each other model, rubric means,
    Bradley-Terry strengths, judge models, and the items people disagreed on most."""
    reviewers = ", ".join(f"{name} {count}" for name, count in stats["reviewers"].items()) or "none yet"
    blocks: list[Block] = [Facts([
        ("tuned model", stats["tuned"]),
        ("judgments by people", f"{stats['judgments']} ({reviewers})"),
        ("agreement", agreement_text(stats["agreement"])),
        *sample_facts(stats.get("sampling")),
    ])]
    blocks.extend(Text(comparison_sentence(stats["tuned"], row)) for row in stats["comparisons"] if row["items"])
    blocks.append(Table(
        ["against", "items", "W–L–T", "both bad", "win rate [95% CI]", "decisive", "sign test p"],
        [comparison_row(row) for row in stats["comparisons"]],
        caption=f"{stats['tuned']} against each model: wins–losses–ties, both-bad apart; the win rate is wins over "
                "the decisive items (wins + losses), ties and both-bad left out, as in the sign test (two-sided); "
                "Wilson intervals; an item judged by several people counts once"))
    rubric = stats["rubric"]
    criteria = list(next(iter(rubric.values()), {}))
    if any(cell["n"] for scores in rubric.values() for cell in scores.values()):
        blocks.append(Table(["model", *criteria],
                            [[model, *(mean_text(scores[criterion]) for criterion in criteria)]
                             for model, scores in rubric.items()],
                            caption=f"Mean rubric scores, 1-5 ({stats['rubric_interval']})"))
    if stats["bradley_terry"]:
        ranked = sorted(stats["bradley_terry"].items(), key=lambda entry: -entry[1])
        blocks.append(Table(["model", "strength"], [[model, format_value(value)] for model, value in ranked],
                            caption="Bradley-Terry strengths (sum to 1; P(i beats j) = s_i / (s_i + s_j))"))
    if stats["judges"]:
        blocks.append(Table(
            ["judge", "judgments", "against", "W–L–T", "both bad", "win rate [95% CI]", "kappa with people"],
            [[judge, str(entry["judgments"]), row["against"], record_text(row), str(row["both_bad"]), rate_text(row),
              kappa_text(entry["agreement_with_humans"])]
             for judge, entry in stats["judges"].items() for row in entry["comparisons"]],
            caption="Judge models (each pair asked in both orders: a verdict line that flips with the order counts as "
                    "a tie; verdicts by letter probabilities average both orders' log-odds; a reference judge scores "
                    "each answer against the reference answer, in no order)"))
    if stats["disagreements"]:
        blocks.append(Table(
            ["location", "item", "prompt", "verdicts"],  # the row's name first: the item number right-aligns
            [[entry["location"], str(entry["item_id"]), shorten(entry["prompt"], PROMPT_CHARS),
              "; ".join(f"{reviewer}: {verdict}" for reviewer, verdict in entry["verdicts"].items())]
             for entry in stats["disagreements"]],
            caption="Items with the strongest disagreement"))
    elif stats["agreement"]["items"]:
        blocks.append(Text("The people agreed on every item they shared."))
    return blocks


def sample_facts(sampling: dict | None) -> list[tuple[str, str]]:
    """A classification review's sample (`tunesmith.review.create.disagreements`): its rates are over the items
    where the models' labels differ, which the reader must know to read them."""
    if not sampling:
        return []
    return [("sample", f"{sampling['sentence']} (the rates below are over these disagreements, not over every test "
                       "prompt)")]


def comparison_row(row: dict) -> list[str]:
    p_value = row["sign_test_p"]
    return [row["against"], str(row["items"]), record_text(row), str(row["both_bad"]), rate_text(row),
            str(row["decisive"]), plain(p_value) if p_value is not None else "n/a (no wins or losses)"]


def record_text(row: dict) -> str:
    """Wins–losses–ties, as sports tables write it: ``9–1–16``."""
    return f"{row['wins']}–{row['losses']}–{row['ties']}"


def rate_text(row: dict) -> str:
    """``90% [60%, 98%]``: wins over decisive items with the Wilson interval, or why there is no rate."""
    if not row["items"]:
        return "no items judged"
    if row["win_rate"] is None:
        return "no decisive items (only ties or both bad)"
    low, high = row["win_interval"]
    return f"{row['win_rate']:.0%} [{low:.0%}, {high:.0%}]"


def comparison_sentence(tuned: str, row: dict) -> str:
    """One comparison as a sentence, e.g. "tuned against base: 9–1–16 (wins–losses–ties), 2 both bad; it wins 90%
    of the 10 decisive items (95% CI 60%–98%), sign test p = 0.0215"."""
    both_bad = f", {row['both_bad']} both bad" if row["both_bad"] else ""
    record = f"{tuned} against {row['against']}: {record_text(row)} (wins–losses–ties){both_bad}"
    if row["win_rate"] is None:
        return f"{record}; no decisive items, so no win rate."
    low, high = row["win_interval"]
    return (f"{record}; it wins {row['win_rate']:.0%} of the {count_of(row['decisive'], 'decisive item')} "
            f"(95% CI {low:.0%}–{high:.0%}), sign test p = {plain(row['sign_test_p'])}.")


def mean_text(cell: dict) -> str:
    if not cell["n"]:
        return "no scores"
    interval = f" [{cell['interval'][0]:.2f}, {cell['interval'][1]:.2f}]" if cell["interval"] else ""
    return f"{cell['mean']:.2f}{interval} (n={cell['n']})"


def agreement_text(agreement: dict) -> str:
    if agreement["method"] is None:
        return agreement["note"]
    name = KAPPA_NAMES[agreement["method"]]
    if agreement["kappa"] is None:
        return f"{name}: {agreement['note']} ({count_of(agreement['items'], 'item')} judged by everyone)"
    text = (f"{name} {agreement['kappa']:.3f} on {count_of(agreement['items'], 'item')} judged by everyone (same "
            f"verdict on {agreement['observed']:.0%})")
    return f"{text}; {agreement['note']}" if agreement["note"] else text


def kappa_text(agreement: dict) -> str:
    if agreement["kappa"] is None:
        return f"not defined ({count_of(agreement['pairs'], 'shared judgment')})"
    if agreement.get("note"):
        return f"{agreement['kappa']:.3f}, {agreement['observed']:.0%} same, {agreement['note']}"
    return (f"{agreement['kappa']:.3f} ({count_of(agreement['pairs'], 'shared judgment')}, "
            f"{agreement['observed']:.0%} same)")
