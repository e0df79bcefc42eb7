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

from tunesmith.errors import RunError
from tunesmith.json_files import read_json

GATE_VERSION = 1
"""gate.json's ``version``: a reader refuses a newer one."""
STATUSES = ("passed", "failed", "measured", "skipped")
"""A check's ``status``: judged against its threshold (passed, failed), measured with no threshold set
(measured), or not measured, with the reason (skipped). Only a failed check fails the gate."""


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
    if not isinstance(gate, dict) or not isinstance(gate.get("checks"), list) or "passed" not in gate:
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
