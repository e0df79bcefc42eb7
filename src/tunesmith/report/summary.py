"""The report's first section, the verdict: what was tuned, how it scores against its base and the best classic
baseline on the headline metrics, how long it took, and what should make a reader cautious (leakage, truncation,
other data findings)."""

from __future__ import annotations

from tunesmith.config import RunConfig
from tunesmith.config.vocabulary import METHODS, uses_adapter
from tunesmith.document import Facts, Section, Table, Text, format_duration, format_length, plain
from tunesmith.results import baseline_verdict, comparison_table

HEADLINE_METRICS = {
    "classification": ("accuracy", "f1", "loss"),
    "regression": ("mse", "pearson", "loss"),
    "generation": ("rouge_l", "bleu", "loss"),
}


def summary_section(config: RunConfig, eval_data: dict | None, train_summary: dict | None,
                    data_summary: dict | None, timings: dict | None) -> Section:
    method = METHODS[config.method]
    if uses_adapter(config.method):
        method += f" r={config.lora.r}, alpha={config.lora.alpha:g}"
    facts = [("model", f"{config.model.name} ({method})")]
    blocks = []
    if eval_data:
        facts.insert(0, ("task", plain(eval_data.get("task"))))
        facts.append(("test rows", format_length(eval_data.get("num_examples"))))
        headline = headline_table(eval_data)
        if headline.rows:
            blocks.append(Text(verdict(eval_data, headline)))
            blocks.append(headline)
    else:
        blocks.append(Text("Not evaluated yet: run `tunesmith eval` for the verdict."))
    if train_summary:
        processes = train_summary.get("processes") or 1
        facts.append(("training", f"{plain(train_summary.get('steps'))} steps in "
                                  f"{format_duration(train_summary.get('elapsed_s'))}"
                                  + (f" on {processes} processes" if processes > 1 else "")))
    if timings and timings.get("total") is not None:
        facts.append(("whole run", format_duration(timings["total"])))
    blocks.insert(0, Facts(facts))
    cautions = warnings(eval_data, train_summary, data_summary)
    if cautions:
        blocks.append(Facts(cautions, caption="Warnings"))
    return Section("Summary", blocks)


def headline_table(eval_data: dict) -> Table:
    """The rows of the comparison table that say the most about the task."""
    table = comparison_table(eval_data)
    wanted = HEADLINE_METRICS.get(eval_data.get("task"), ())
    return Table(table.header, [row for row in table.rows if row[0] in wanted], caption=table.caption)


def verdict(eval_data: dict, headline: Table) -> str:
    """One sentence on the first headline metric: ``accuracy: base 0.7190 → tuned 0.9830 (+0.2640)``, then one
    on the best baseline when there are baselines (`baseline_verdict`)."""
    cells = dict(zip(headline.header, headline.rows[0]))
    name, base, tuned, delta = (cells[column] for column in ("metric", "base", "tuned", "delta"))
    against_baseline = baseline_verdict(eval_data)
    after = f" {against_baseline}" if against_baseline else ""
    if eval_data.get("base") is None:
        return f"{name} of the tuned model: {tuned} on {plain(eval_data.get('num_examples'))} test rows.{after}"
    text = f"{name}: base {base} → tuned {tuned} ({delta}) on {plain(eval_data.get('num_examples'))} test rows"
    unleaked = eval_data.get("unleaked")
    if unleaked and "tuned, unleaked" in cells:
        base, tuned, delta = (cells[f"{column}, unleaked"] for column in ("base", "tuned", "delta"))
        text += (f"; on the {plain(unleaked['num_examples'])} rows not leaked from train: base {base} → tuned "
                 f"{tuned} ({delta})")
    return f"{text}.{after}"


def warnings(eval_data: dict | None, train_summary: dict | None, data_summary: dict | None) -> list[tuple[str, str]]:
    found = []
    leakage = (eval_data or {}).get("leakage") or {}
    if leakage.get("leaked_rows"):
        found.append(("leakage", f"{plain(leakage['leaked_rows'])} of {plain(eval_data['num_examples'])} test rows "
                                 "are also in train (exact or near): their scores overstate the model; the "
                                 "'unleaked' columns leave them out"))
    truncation = (train_summary or {}).get("truncation") or {}
    if truncation.get("truncated_rows"):
        found.append(("truncation", f"{plain(truncation['truncated_rows'])} of {plain(truncation.get('rows'))} "
                                    f"training rows were truncated ({plain(truncation.get('supervised_tokens_lost'))} "
                                    "supervised tokens lost)"))
    if eval_data and eval_data.get("base") is None:
        found.append(("base model", "not evaluated, so there is no delta (`tunesmith compare` evaluates it)"))
    if train_summary and train_summary.get("skipped_steps"):
        found.append(("skipped steps", f"{len(train_summary['skipped_steps'])} updates skipped for a non-finite "
                                       "loss or gradient"))
    # Test leakage has its own line above; every other finding (validation leakage too) is summed up by kind.
    other = [f for f in (data_summary or {}).get("findings") or []
             if not (f.get("kind") == "leakage" and str(f.get("split", "")).endswith("/test"))]
    if other:
        by_kind: dict[str, list[str]] = {}
        for f in other:
            by_kind.setdefault(str(f.get("kind")), []).append(f"{f.get('split')} {plain(f.get('count'))}")
        kinds = "; ".join(f"{kind} ({', '.join(counts)})" for kind, counts in by_kind.items())
        found.append(("data check", f"{kinds}: see Data"))
    if (data_summary or {}).get("unreadable_count"):
        found.append(("unreadable rows", f"{data_summary['unreadable_count']}: see Data"))
    return found
