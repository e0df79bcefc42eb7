"""JSON and JSON Lines files that tunesmith writes and reads back: run files (`eval.json`, `metrics.jsonl`,
`predictions.jsonl`, summaries) and cache metadata.

Every file written here is valid JSON: JSON has no NaN or infinity (Python would write bare `NaN`, which strict
readers reject), so a non-finite number is written as null; where a value can be non-finite, its writer says why
next to it. Users' data files are not read here: `tunesmith.data.readers` reads them and names every bad row as
FILE:LINE.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from tunesmith.atomic import write_atomic
from tunesmith.errors import RunError


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, indent: int | None = None) -> str:
    """``value`` as valid JSON text (see the module docstring; non-ASCII text kept as is)."""
    return json.dumps(finite(value), indent=indent, ensure_ascii=False, allow_nan=False)


def jsonl_text(rows: Iterable[Any]) -> str:
    """One JSON value per line."""
    return "".join(dumps(row) + "\n" for row in rows)


def write_json(path: str | Path, value: Any) -> None:
    """Replace ``path`` atomically with ``value`` as indented JSON."""
    write_atomic(path, dumps(value, indent=1) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    """Replace ``path`` atomically with one JSON value per line."""
    write_atomic(path, jsonl_text(rows))


def append_jsonl(handle: TextIO, record: Any) -> None:
    """Append one line and flush it, so a reader (a report built mid-run) sees every finished line."""
    handle.write(dumps(record) + "\n")
    handle.flush()


def read_json(path: str | Path) -> Any | None:
    """The parsed file, or None when the stage that writes it has not run yet."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})",
                       "re-run the stage that writes it") from None


def read_jsonl(path: str | Path) -> list[Any]:
    """The values of a JSON Lines file ([] when missing). A cut-off last line is skipped: training appends to
    metrics.jsonl while it runs, so a reader mid-run can catch a line half-written."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    last = max((number for number, line in enumerate(lines, start=1) if line.strip()), default=0)
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == last:
                break
            raise RunError(f"{path}:{number} is not valid JSON", "re-run the stage that writes it") from None
    return rows


def keep_jsonl(path: str | Path, keep: Callable[[Any], bool]) -> None:
    """Rewrite ``path`` (atomically) with only the lines whose value ``keep`` accepts; nothing when missing."""
    path = Path(path)
    if path.is_file():
        write_jsonl(path, [row for row in read_jsonl(path) if keep(row)])
