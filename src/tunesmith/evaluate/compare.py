"""Base vs tuned side by side: the comparison table of an eval.json, for the terminal (`tunesmith eval` and
`compare`), the run report and the model card of an export."""

from __future__ import annotations

from tunesmith.config.schema import RunConfig
from tunesmith.document import NOT_AVAILABLE, Table, format_value, is_number, plain, text_table
from tunesmith.evaluate.runner import evaluate_against, evaluate_run
from tunesmith.json_files import read_json
from tunesmith.run_dir import RunDir


def comparison_table(result: dict) -> Table:
    """``metric | base | tuned | delta`` for every scalar metric of an eval.json dict, and the same three
    columns on the test rows not leaked from train when some were (nested detail such as per_class is left
    out; a metric that could not be computed shows as "not available")."""
    first, second = result.get("columns") or ("base", "tuned")
    blocks = [(result.get("base") or {}, result.get("tuned") or {}, "")]
    unleaked = result.get("unleaked")
    if unleaked:
        blocks.append((unleaked.get("base") or {}, unleaked.get("tuned") or {}, ", unleaked"))
    names = [name for name in dict.fromkeys([*blocks[0][1], *blocks[0][0]])
             if all(value is None or is_number(value) for value in (blocks[0][0].get(name), blocks[0][1].get(name)))]
    header = ["metric"] + [f"{column}{suffix}" for _, _, suffix in blocks for column in (first, second, "delta")]
    rows = []
    for name in names:
        row = [name]
        for base, tuned, _ in blocks:
            both = is_number(base.get(name)) and is_number(tuned.get(name))
            delta = format_value(tuned[name] - base[name], signed=True) if both else NOT_AVAILABLE
            row += [plain(base.get(name)), plain(tuned.get(name)), delta]
        rows.append(row)
    return Table(header, rows, caption=comparison_caption(result))


def comparison_caption(result: dict) -> str:
    caption = f"{result.get('task')} on {plain(result.get('num_examples'))} test rows"
    if result.get("against"):
        caption += f" of this run, the previous run {result['against']} scored on them too"
    unleaked = result.get("unleaked")
    if unleaked:
        leaked = result["num_examples"] - unleaked["num_examples"]
        caption += (f"; {plain(leaked)} of them also in train, so the 'unleaked' columns score the other "
                    f"{plain(unleaked['num_examples'])}")
    return caption


def format_comparison(result: dict) -> str:
    """`comparison_table` as plain text."""
    return "\n".join(text_table(comparison_table(result)))


def compare_run(config: RunConfig, run: RunDir, against: RunDir | None = None) -> str:
    """The comparison table of a run: base vs tuned, evaluating it first when eval.json lacks the base model; or,
    ``against`` a previous run, that run's model vs this one on this run's test split (`evaluate_against`)."""
    if against is not None:
        return format_comparison(evaluate_against(config, run, against))
    result = read_json(run.eval_json)
    if result is None or result.get("base") is None:
        result = evaluate_run(config, run, include_base=True)
    return format_comparison(result)
