"""Which run is in service: a marker (a symbolic link, ``current`` beside the runs by default) that `promote` points
at a run, and `marked_run` reads. ``tunesmith serve MARKER --watch`` serves the run the marker points to and swaps
to the new one when it moves.

A promotion is refused unless the run passed its release gate on its current evaluation
(`tunesmith.results.gate.require_gate` with ``need_pass``); ``force`` promotes anyway and says so in the audit
line. The marker is replaced atomically (a new link renamed over the old: a reader sees the old run or the new
one, never no marker), and every promotion appends one line to ``promotions.jsonl`` beside it: when, from which
run to which, the gate's line, and whether it was forced.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from tunesmith.atomic import STAGING_MARK, fsync_entry, write_failure
from tunesmith.errors import RunError
from tunesmith.json_files import dumps
from tunesmith.results.gate import gate_line, require_gate
from tunesmith.run_dir import RunDir

MARKER_NAME = "current"
"""The marker's name when ``--marker`` is not given, in the promoted run's parent folder."""
PROMOTIONS_FILE = "promotions.jsonl"
"""The audit log of a marker's promotions, in the marker's folder."""


def default_marker(run: RunDir) -> Path:
    """``current`` in the folder that holds ``run``."""
    return run.root.resolve().parent / MARKER_NAME


def marked_run(marker: str | Path) -> RunDir:
    """The run folder ``marker`` points to (resolved, so a later promotion does not change what it names); a
    `RunError` saying what is wrong when it points nowhere or not at a run."""
    marker = Path(marker)
    if not marker.is_symlink() and not marker.exists():
        raise RunError(f"the marker {marker} does not exist",
                       f"promote a run first: tunesmith promote RUN --marker {marker}")
    resolved = marker.resolve()
    if not resolved.exists():
        raise RunError(f"the marker {marker} points to {os.readlink(marker)}, which does not exist",
                       f"promote an existing run: tunesmith promote RUN --marker {marker}")
    run = RunDir(resolved)
    if not run.config_path.is_file():
        raise RunError(f"the marker {marker} points to {resolved}, which is not a tunesmith run folder "
                       "(no config.yaml)", f"promote a run: tunesmith promote RUN --marker {marker}")
    return run


def promote(run: str | Path, marker: str | Path | None = None, force: bool = False) -> dict:
    """Point ``marker`` (default: `default_marker`) at ``run`` and append the promotion to ``promotions.jsonl``
    beside it; the appended record is returned. Refused (a `RunError`) when the run has not passed its gate on its
    current evaluation, unless ``force``, and when ``marker`` is a file or folder rather than a link."""
    run = RunDir(Path(run).resolve())
    run.config()  # not a run folder: one line naming it
    gate = require_gate(run.root, "promote", force, need_pass=True)
    marker = Path(marker) if marker is not None else default_marker(run)
    if marker.exists() and not marker.is_symlink():
        raise RunError(f"{marker} is a {'folder' if marker.is_dir() else 'file'}, not a marker link; promoting "
                       "would replace it", "give another --marker path (or move that one away)")
    previous = _target(marker)
    _replace_link(marker, os.path.relpath(run.root, marker.parent.resolve()))
    record = {"time": _utc_now(), "marker": str(marker.absolute()), "from": previous, "to": str(run.root),
              "gate": gate_line(gate) + (" (forced)" if force else ""),
              "passed": gate["passed"] if gate is not None else None, "forced": force}
    with open(marker.parent / PROMOTIONS_FILE, "a", encoding="utf-8") as handle:
        handle.write(dumps(record) + "\n")  # one write of a whole line: concurrent promotions do not interleave
    return record


def _target(marker: Path) -> str | None:
    """Where ``marker`` points now, resolved (a link to nothing: its text); None when there is no marker."""
    if not marker.is_symlink():
        return None
    resolved = marker.resolve()
    return str(resolved) if resolved.exists() else os.readlink(marker)


def _replace_link(marker: Path, target: str) -> None:
    """A new link beside ``marker``, renamed over it: the rename is atomic, so readers never find no marker. The
    target is relative to the marker's folder, so moving the folder of runs and marker together keeps it."""
    staging = marker.parent / f".{marker.name}{STAGING_MARK}{uuid.uuid4().hex[:8]}"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, staging)
        os.replace(staging, marker)
        fsync_entry(marker.parent)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise write_failure(error, marker) or RunError(
            f"cannot point {marker} at {target}: {error.strerror or error}", "check that folder's permissions") \
            from None


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
