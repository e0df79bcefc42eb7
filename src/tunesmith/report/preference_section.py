"""The report's "Preference" section, for a preference run (`method: dpo | orpo | simpo`): how the tuned model ranks
the held-out pairs against its reference (eval.json's ``preference``, `tunesmith.evaluate.preference`), what the
task of the run it continues from kept, and a judge model's win rate against that run when its review was judged."""

from __future__ import annotations

from tunesmith.document import Block, Facts, Section, Table, Text, format_value, is_number, plain
from tunesmith.report.human_review import judge_rows
from tunesmith.results import comparison_table
from tunesmith.review.summary import rate_text, record_text
from tunesmith.run_dir import RunDir

TITLE = "Preference"


def preference_section(eval_data: dict | None, run: RunDir) -> Section | None:
    """The section, or None for a run without a ``preference`` block (a supervised run, or not evaluated)."""
    block = (eval_data or {}).get("preference")
    if not isinstance(block, dict):
        return None
    if "skipped" in block:
        return Section(TITLE, [Text(f"Preference accuracy not measured: {block['skipped']}.")])
    blocks: list[Block] = [
        Facts([("pairs", plain(block.get("pairs"))), ("method", plain(block.get("method"))),
               ("beta", plain(block.get("beta")))]),
        Table(["model", "preference accuracy", "mean margin", "margin"],
              [_ranking_row("reference (before)", block.get("reference") or {}, block, "reference"),
               _ranking_row("tuned (after)", block.get("tuned") or {}, block, "tuned")],
              caption=f"Held-out pairs ranked right (chosen above rejected), with "
                      f"{block.get('confidence', 0.95):.0%} intervals (Wilson for the "
                      "accuracy, bootstrap for the mean margin)"),
    ]
    if (block.get("left_out") or {}).get("pairs"):
        blocks.append(Text(f"{plain(block['left_out']['pairs'])} test pairs left out: {block['left_out']['reason']}."))
    init_from = eval_data.get("init_from")
    if isinstance(init_from, dict):
        blocks.append(Text(f"The task of {init_from.get('run')} ({plain(init_from.get('task'))}) measured again on its "
                           f"{plain(init_from.get('test_rows'))} test rows, the {init_from.get('label')} as the base: "
                           "a preference step that costs task quality shows here."))
        blocks.append(comparison_table(eval_data))
    judged = [(judge, row) for judge, row in judge_rows(run) if row["items"]]
    if judged:
        blocks.append(Table(["judge", "against", "W–L–T", "win rate [95% CI]"],
                            [[judge, row["against"], record_text(row), rate_text(row)] for judge, row in judged],
                            caption="A judge model's blind verdicts on held-out prompts (`tunesmith review`)"))
    return Section(TITLE, blocks)


def _ranking_row(name: str, ranking: dict, block: dict, side: str) -> list[str]:
    return [name, _with_interval(ranking.get("accuracy"), ranking.get("accuracy_ci")),
            _with_interval(ranking.get("margin_mean"), ranking.get("margin_ci")),
            plain((block.get("margins") or {}).get(side))]


def _with_interval(value, interval) -> str:
    if not is_number(value):
        return "not available"
    if not interval:
        return format_value(value)
    return f"{format_value(value)} [{format_value(interval[0])}, {format_value(interval[1])}]"
