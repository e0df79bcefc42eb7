"""A run's release gate as recorded in its gate.json (written by `tunesmith.gate`): read it, say it in one line,
and refuse what a failed (or missing, or stale) gate forbids. Below every stage that acts on a gated run: export
and serve refuse a failed gate without ``--force``, `tunesmith promote` also a missing or stale one; the report
and the web UI show it.

gate.json holds ``eval_sha256``, the hash of the eval.json it judged: evaluating the run again makes the gate
stale (its numbers no longer describe the run's evaluation).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tunesmith.config.vocabulary import metric_scale
from tunesmith.document import Block, Facts, Table, Text, format_duration, format_value, is_number, plain
from tunesmith.errors import RunError
from tunesmith.json_files import read_json
from tunesmith.text import shorten

GATE_VERSION = 1
"""gate.json's ``version``: a reader refuses a newer one."""
STATUSES = ("passed", "failed", "measured", "skipped")
"""A check's ``status``: judged against its threshold (passed, failed), measured with no threshold set
(measured), or not measured, with the reason (skipped). Only a failed check fails the gate."""


def margin_in_units(margin: float, metric: str) -> float:
    """`gate.margin`, stated on the 0–1 scale of a score, in ``metric``'s units (times `metric_scale`: 100 for BLEU),
    so that 0.01 allows 1 point of accuracy and 1 BLEU point alike. The errors (mse, mae) have no fixed scale: their
    margin is in their own units as stated."""
    return margin * metric_scale(metric)


def scaled_margin_text(margin: float, metric: str) -> str | None:
    """``gate.margin 0.01 = 1 bleu`` where the margin is scaled to the metric's units (`margin_in_units`); None where
    it applies as stated."""
    if metric_scale(metric) == 1:
        return None
    return f"gate.margin {margin:g} = {margin_in_units(margin, metric):g} {metric}"


def file_sha256(path: str | Path) -> str | None:
    """The SHA-256 of a file's bytes; None when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_gate(gate_json: str | Path) -> dict | None:
    """gate.json's content; None when the gate never ran. A damaged or newer file is a `RunError`."""
    gate = read_json(gate_json)
    if gate is None:
        return None
    if not isinstance(gate, dict) or not isinstance(gate.get("checks"), list) or "passed" not in gate \
            or not all(isinstance(check, dict) and isinstance(check.get("name"), str) for check in gate["checks"]):
        raise RunError(f"{gate_json} is not a gate result", "run `tunesmith gate` on the run again")
    if gate.get("version", 0) > GATE_VERSION:
        raise RunError(f"{gate_json} was written by a newer tunesmith (version {gate['version']})",
                       "upgrade tunesmith, or run `tunesmith gate` on the run again")
    return gate


def is_stale(gate: dict, eval_json: str | Path) -> bool:
    """Whether the run was evaluated again (or its evaluation removed) since the gate judged it."""
    return gate.get("eval_sha256") != file_sha256(eval_json)


def failed_checks(gate: dict) -> list[dict]:
    return [check for check in gate["checks"] if check.get("status") == "failed"]


def gate_line(gate: dict | None) -> str:
    """One line: "gate passed (7 checks, 2 measured only)" or "gate failed: against_baseline (reason); ..."."""
    if gate is None:
        return "not gated: run `tunesmith gate RUN`"
    if gate["passed"]:
        measured = sum(check.get("status") in ("measured", "skipped") for check in gate["checks"])
        judged = len(gate["checks"]) - measured
        return f"gate passed ({judged} checks passed, {measured} measured only or skipped)"
    return "gate failed: " + "; ".join(f"{check['name']} ({check.get('reason', 'failed')})"
                                       for check in failed_checks(gate))


def require_gate(root: str | Path, action: str, force: bool, need_pass: bool = False) -> dict | None:
    """Refuse ``action`` (``"export"``, ``"serve"``, ``"promote"``) on the run folder ``root`` when its gate failed,
    or, with ``need_pass``, when it never ran or is stale; ``force`` allows it anyway. Returns the gate (None when
    it never ran)."""
    root = Path(root)
    gate = read_gate(root / "gate.json")
    if force:
        return gate
    hint = f"run `tunesmith gate {root}` (or pass --force to {action} anyway)"
    if gate is not None and not gate["passed"]:
        raise RunError(f"{root.name} failed its release gate: {gate_line(gate).removeprefix('gate failed: ')}",
                       f"fix the run and gate it again, or pass --force to {action} anyway")
    if need_pass and gate is None:
        raise RunError(f"{root.name} has not passed a release gate", hint)
    if need_pass and is_stale(gate, root / "eval.json"):
        raise RunError(f"{root.name}'s gate judged an earlier evaluation (eval.json changed since)", hint)
    return gate


# ---- how the report, the web UI and the model card show a gate -------------------------------------------------

GATE_STATES = ("passed", "failed", "stale", "not gated", "unreadable")
"""A run's gate in one word (the runs table's gate column): its gate.json passed or failed, judged an earlier
evaluation (stale: eval.json changed since), is missing (not gated), or cannot be read (unreadable: damaged, or
written by a newer tunesmith)."""
COMPARISONS = ("against_base", "against_init_from", "against_baseline", "against_previous")
"""The checks that compare the tuned model's metric with another model's on the same test rows."""
PAIRED = (*COMPARISONS, "preference_accuracy")
"""Every check judged by a paired bootstrap: the comparisons, and a preference run's ranking of its held-out pairs
against its reference's (always higher is better)."""
SUBSET_NAMES = {"all": "all test rows", "unleaked": "rows not leaked from train"}
SHOWN_ANSWER_CHARS = 200
NO_VALUE = "–"


def gate_state(root: str | Path) -> tuple[str, dict | None, str]:
    """``(state, gate, line)`` of the run folder ``root``: one of `GATE_STATES`, gate.json's content (None when
    missing or unreadable) and one line saying it (for an unreadable file: what is wrong with it)."""
    root = Path(root)
    try:
        gate = read_gate(root / "gate.json")
    except RunError as error:
        return "unreadable", None, str(error)
    if gate is None:
        return "not gated", None, gate_line(None)
    if is_stale(gate, root / "eval.json"):
        return "stale", gate, f"stale: {gate_line(gate)}, but eval.json changed since; run `tunesmith gate` again"
    return ("passed" if gate["passed"] else "failed"), gate, gate_line(gate)


def stale_text(run_name: str) -> str:
    return (f"This gate is stale: {run_name} was evaluated again after the gate judged it (eval.json changed "
            f"since), so the numbers below describe the earlier evaluation. Run `tunesmith gate {run_name}` again.")


def checks_table(gate: dict) -> Table:
    """One row per check: its title and name, status, decisive value, interval, what was required, rows, and the
    reason it passed, failed or was skipped."""
    rows = [[f"{check.get('title', check['name'])} ({check['name']})", plain(check.get("status")),
             _value_text(gate, check), _interval_text(check),
             _threshold_text(check, gate.get("higher_is_better", True)), _rows_text(check),
             plain(check.get("reason"))] for check in gate["checks"]]
    return Table(["check", "status", "value", f"{_level(gate)} interval", "required", "rows", "reason"], rows,
                 caption="Checks")


def comparisons_table(gate: dict) -> Table | None:
    """The comparisons of the gate metric with each other model, on every test row and on the rows not leaked from
    train: both models' scores, their paired difference with its bootstrap interval, and McNemar's test."""
    rows = []
    for check in gate["checks"]:
        if check["name"] not in COMPARISONS or not isinstance(check.get("subsets"), dict):
            continue
        for subset, numbers in check["subsets"].items():
            if not isinstance(numbers, dict):
                continue
            mcnemar = numbers.get("mcnemar")
            test = (f"p = {_p_value(mcnemar.get('p_value'))} ({plain(mcnemar.get('tuned_only_right'))} rows only "
                    f"the tuned model got right, {plain(mcnemar.get('other_only_right'))} only the other)"
                    if isinstance(mcnemar, dict) else NO_VALUE)
            rows.append([plain(check.get("other")), SUBSET_NAMES.get(subset, subset), plain(numbers.get("rows")),
                         plain(numbers.get("tuned")), plain(numbers.get("other")),
                         _signed(numbers.get("difference")), _interval(numbers.get("interval"), signed=True), test])
    if not rows:
        return None
    better = "higher" if gate.get("higher_is_better", True) else "lower"
    caption = (f"{gate.get('metric')} of the tuned model against each other model (difference: tuned − other; "
               f"{better} is better), paired bootstrap {_level(gate)} intervals ({plain(gate.get('resamples'))} "
               f"resamples, seed {plain(gate.get('seed'))})")
    return Table(["against", "test rows", "rows", "tuned", "other", "difference", "interval", "McNemar"], rows,
                 caption=caption)


def general_ability_text(check: dict) -> str:
    """How much of the base's general ability the tuned model keeps, in a sentence (or why it was not measured)."""
    if check.get("status") == "skipped" or not is_number(check.get("kept")):
        return f"General ability was not measured: {plain(check.get('reason'))}."
    text = (f"The tuned model keeps {_percent(check['kept'])} {_percent_interval(check.get('kept_interval'))} "
            f"of the base model's general ability: its loss on the reference answers of "
            f"{plain(check.get('rows'))} general prompts ({plain(check.get('tokens'))} tokens) went from "
            f"{plain(check.get('base_loss'))} (base) to {plain(check.get('tuned_loss'))} "
            f"({_signed(check.get('loss_delta'))}, interval {_interval(check.get('loss_delta_interval'), True)})")
    if is_number(check.get("agreement")):
        text += (f", and it predicts {_percent(check['agreement'])} "
                 f"{_percent_interval(check.get('agreement_interval'))} of the base's greedy answer tokens")
    required = [f"keeps at least {_percent(check['threshold'])}"] if is_number(check.get("threshold")) else []
    if is_number(check.get("agreement_threshold")):
        required.append(f"agrees on at least {_percent(check['agreement_threshold'])}")
    verdict = f"; required: {' and '.join(required)} ({check.get('status')})" if required else " (measured only)"
    return text + verdict + "."


def lm_eval_table(check: dict) -> Table | None:
    """The lm-evaluation-harness tasks run on the base and on the tuned model's merged export, when there are."""
    lm_eval = check.get("lm_eval")
    if not isinstance(lm_eval, dict) or not isinstance(lm_eval.get("tasks"), dict):
        return None
    rows = [[str(task), plain(scores.get("metric")), plain(scores.get("base")), plain(scores.get("tuned")),
             _percent(scores.get("kept")), _stderr_text(scores.get("stderr")), plain(scores.get("rows"))]
            for task, scores in lm_eval["tasks"].items() if isinstance(scores, dict)]
    threshold = lm_eval.get("threshold")
    required = f"; each task must keep at least {_percent(threshold)}" if is_number(threshold) else ""
    return Table(["task", "metric", "base", "tuned", "kept", "stderr (base / tuned)", "rows"], rows,
                 caption=f"lm-evaluation-harness on the base and the merged export{required}")


def gate_summary_blocks(gate: dict, run_name: str, stale: bool) -> list[Block]:
    """The gate in brief (the model card of an export): whether it is stale, the verdict, how much general ability
    is kept, and the checks."""
    blocks: list[Block] = [Text(stale_text(run_name))] if stale else []
    blocks.append(Text(gate_line(gate).replace("gate ", "Gate ", 1)))
    general = _check(gate, "general_ability")
    if general is not None:
        blocks.append(Text(general_ability_text(general)))
    return blocks + [checks_table(gate)]


def gate_blocks(gate: dict, run_name: str, stale: bool) -> list[Block]:
    """Everything a page shows of a gate: `gate_summary_blocks`, then what was judged, the comparisons, the
    lm-evaluation-harness tasks, and invalid answers (model text, kept as plain text)."""
    better = "higher" if gate.get("higher_is_better", True) else "lower"
    facts = [("judged", f"{plain(gate.get('created_at'))} in {format_duration(gate.get('seconds'))}"),
             ("metric", f"{plain(gate.get('metric'))} ({better} is better)"), ("test rows", _rows_caption(gate))]
    against = gate.get("against")
    if isinstance(against, dict):
        facts.append(("run in service", f"{plain(against.get('run'))} ({plain(against.get('path'))})"))
    blocks = [*gate_summary_blocks(gate, run_name, stale), Facts(facts)]
    comparisons = comparisons_table(gate)
    if comparisons is not None:
        blocks.append(comparisons)
    general = _check(gate, "general_ability")
    if general is not None:
        table = lm_eval_table(general)
        blocks += [table] if table is not None else []
        if general.get("source"):
            blocks.append(Text(f"General prompts: {general['source']}."))
    valid = _check(gate, "valid_output")
    rows = [[plain(example.get("location")), shorten(plain(example.get("answer")), SHOWN_ANSWER_CHARS)]
            for example in (valid or {}).get("examples") or [] if isinstance(example, dict)]
    if rows:
        blocks.append(Table(["row", "answer"], rows, caption=f"Invalid answers (not {valid.get('rule')}), "
                                                             f"{plain(valid.get('invalid'))} in all"))
    return blocks


def _check(gate: dict, name: str) -> dict | None:
    return next((check for check in gate["checks"] if check.get("name") == name), None)


def _value_text(gate: dict, check: dict) -> str:
    value, name = check.get("value"), check["name"]
    if not is_number(value):
        return NO_VALUE
    if name == "preference_accuracy":
        return f"preference accuracy {_signed(value)}"
    if name in COMPARISONS:
        return f"{gate.get('metric')} {_signed(value)}"
    if name == "calibration":
        return f"ECE {plain(value)}"
    if name == "valid_output":
        return f"{_percent(value)} valid ({plain(check.get('invalid'))} invalid)"
    if name == "general_ability":
        return f"{_percent(value)} kept"
    if name == "latency":
        p50 = f"{check['p50']:.3f} s" if is_number(check.get("p50")) else NO_VALUE
        return f"p95 {value:.3f} s (p50 {p50}, {plain(check.get('device'))})"
    if name == "export_size":
        return f"{value:,.1f} MiB ({plain(check.get('folder'))})"
    return plain(value)


def _interval_text(check: dict) -> str:
    if check["name"] in PAIRED:
        return _interval(((check.get("subsets") or {}).get("all") or {}).get("interval"), signed=True)
    if check["name"] == "general_ability":
        return _percent_interval(check.get("kept_interval"))
    return _interval(check.get("interval"))


def _threshold_text(check: dict, higher_is_better: bool) -> str:
    """What the check required; a comparison's ``threshold`` is the bound its interval must clear (0 for
    `better`, ∓`gate.margin` for `not_worse`)."""
    threshold, name = check.get("threshold"), check["name"]
    if name in PAIRED:
        higher_is_better = higher_is_better or name == "preference_accuracy"
        requirement = check.get("requirement")
        if requirement not in ("better", "not_worse") or not is_number(threshold):
            return plain(requirement) if requirement else NO_VALUE
        side = "above" if higher_is_better else "below"
        wanted = "better than" if requirement == "better" else "not worse than"
        bound = _signed(threshold) if threshold else "0"
        return f"{wanted} {plain(check.get('other'))}: interval {side} {bound}"
    if not is_number(threshold):
        return "nothing (measured only)" if check.get("status") == "measured" else NO_VALUE
    if name in ("valid_output", "general_ability"):
        return f"≥ {_percent(threshold)}"
    unit = {"latency": " s", "export_size": " MiB"}.get(name, "")
    return f"≤ {plain(threshold)}{unit}"


def _rows_text(check: dict) -> str:
    if check["name"] in PAIRED:
        subsets = check.get("subsets") or {}
        counts = [f"{plain(numbers.get('rows'))} {subset}" for subset, numbers in subsets.items()
                  if isinstance(numbers, dict)]
        return ", ".join(counts) or NO_VALUE
    count = check.get("requests") if check["name"] == "latency" else check.get("rows")
    return plain(count) if is_number(count) else NO_VALUE


def _rows_caption(gate: dict) -> str:
    rows = gate.get("rows") or {}
    text = f"{plain(rows.get('all'))} test rows"
    if is_number(rows.get("unleaked")):
        text += f" ({plain(rows['unleaked'])} not leaked from train)"
    return text


def _level(gate: dict) -> str:
    confidence = gate.get("confidence")
    return f"{confidence:.0%}" if is_number(confidence) else "confidence"


def _signed(value) -> str:
    return format_value(value, signed=True) if is_number(value) else NO_VALUE


def _interval(interval, signed: bool = False) -> str:
    if not (isinstance(interval, list) and len(interval) == 2 and all(map(is_number, interval))):
        return NO_VALUE
    show = _signed if signed else plain
    return f"[{show(interval[0])}, {show(interval[1])}]"


def _percent(value) -> str:
    return f"{value:.1%}" if is_number(value) else NO_VALUE


def _percent_interval(interval) -> str:
    if not (isinstance(interval, list) and len(interval) == 2 and all(map(is_number, interval))):
        return NO_VALUE
    return f"[{_percent(interval[0])}, {_percent(interval[1])}]"


def _stderr_text(stderr) -> str:
    """One standard error, or the base's and the tuned model's (``{"base": …, "tuned": …}``) as ``base / tuned``."""
    if isinstance(stderr, dict):
        return f"{plain(stderr.get('base'))} / {plain(stderr.get('tuned'))}"
    return plain(stderr)


def _p_value(value) -> str:
    if not is_number(value):
        return NO_VALUE
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"
