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
    ])]
    blocks.append(Table(
        ["against", "items", "wins", "ties", "both bad", "losses", "win rate [95% CI]", "sign test p"],
        [comparison_row(row) for row in stats["comparisons"]],
        caption=f"{stats['tuned']} against each model (an item judged by several people counts once; Wilson "
                "intervals; sign test two-sided, ties and both-bad left out)"))
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
            ["judge", "judgments", "against", "wins / ties / both bad / losses", "win rate [95% CI]",
             "kappa with people"],
            [[judge, str(entry["judgments"]), row["against"],
              f"{row['wins']} / {row['ties']} / {row['both_bad']} / {row['losses']}", rate_text(row),
              kappa_text(entry["agreement_with_humans"])]
             for judge, entry in stats["judges"].items() for row in entry["comparisons"]],
            caption="Judge models (each pair asked in both orders; an order-dependent verdict counts as a tie)"))
    if stats["disagreements"]:
        blocks.append(Table(
            ["item", "location", "prompt", "verdicts"],
            [[str(entry["item_id"]), entry["location"], shorten(entry["prompt"], PROMPT_CHARS),
              "; ".join(f"{reviewer}: {verdict}" for reviewer, verdict in entry["verdicts"].items())]
             for entry in stats["disagreements"]],
            caption="Items with the strongest disagreement"))
    elif stats["agreement"]["items"]:
        blocks.append(Text("The people agreed on every item they shared."))
    return blocks


def comparison_row(row: dict) -> list[str]:
    p_value = row["sign_test_p"]
    return [row["against"], str(row["items"]), str(row["wins"]), str(row["ties"]), str(row["both_bad"]),
            str(row["losses"]), rate_text(row), plain(p_value) if p_value is not None else "n/a (no wins or losses)"]


def rate_text(row: dict) -> str:
    if row["win_rate"] is None:
        return "no items judged"
    low, high = row["win_interval"]
    return f"{row['win_rate']:.1%} [{low:.1%}, {high:.1%}]"


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
    return (f"{name} {agreement['kappa']:.3f} on {count_of(agreement['items'], 'item')} judged by everyone (same "
            f"verdict on {agreement['observed']:.0%})")


def kappa_text(agreement: dict) -> str:
    if agreement["kappa"] is None:
        return f"not defined ({agreement['pairs']} shared judgments)"
    return f"{agreement['kappa']:.3f} ({agreement['pairs']} shared judgments, {agreement['observed']:.0%} same)"
