"""`tunesmith data clean IN OUT`: write a copy of a data file without the rows the data check flags.

Which findings remove a row is ``data.check.drop`` (or ``--drop kind,kind``); of each duplicate or
near-duplicate group the first row stays (the check only flags the later ones), and for conflicting labels the
rows that disagree with their input's most common label go. ``unreadable`` rows are left out when it is in the
list; otherwise one unreadable row stops the clean (its rows cannot be written back as they were).

The output holds the original row objects (same keys and values, not the normalized conversations) in the
format family of the input: JSON Lines for JSONL/JSON/compressed JSONL input (compressed again when OUT ends in
``.gz`` or ``.zst``), CSV for CSV, Parquet (with the input's schema) for Parquet. A folder or glob input is
written in the family OUT's name asks for. IN is only read: OUT may not be IN, and OUT is written to a temporary
file beside it and renamed into place.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config.schema import DataConfig
from tunesmith.data.check import UnreadableRows, build_report
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import Row, read_rows
from tunesmith.errors import ConfigError, DataError

REMOVED_LISTED = 50
"""Removed rows named in the summary; the rest are counted."""
_FAMILIES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_COMPRESSIONS = (".gz", ".zst")


@dataclass
class CleanResult:
    source: str
    target: str
    total: int
    """Rows in IN, readable or not."""
    kept: int
    removed: list[tuple[str, str, str]] = field(default_factory=list)
    """``(FILE:LINE, kind, why)`` of every row left out, in file order."""

    def counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind, _ in self.removed).most_common())

    def render(self) -> str:
        lines = [f"kept {self.kept} of {self.total} rows: wrote {self.target}"]
        if not self.removed:
            return "\n".join([*lines, "removed nothing"])
        lines.append("removed: " + ", ".join(f"{kind} {count}" for kind, count in self.counts().items()))
        for source, kind, why in self.removed[:REMOVED_LISTED]:
            lines.append(f"  {source}: {kind}" + (f" ({why})" if why else ""))
        if len(self.removed) > REMOVED_LISTED:
            lines.append(f"  ... and {len(self.removed) - REMOVED_LISTED} more")
        return "\n".join(lines)


def clean_file(source: str | Path, target: str | Path, config: DataConfig, tokenizer) -> CleanResult:
    """Check ``source`` as one split with ``config`` (format, columns, ``check`` settings and ``check.drop``)
    and write the rows no dropped finding names to ``target``."""
    source, target = Path(source), Path(target)
    family = _output_family(source, target)
    drop = set(config.check.drop)
    unreadable = UnreadableRows()
    rows = read_rows(source, on_error=unreadable)
    if not rows and not unreadable.errors:
        raise DataError(str(source), None, "no rows to clean")
    examples, fmt, labels = {}, "", None
    if rows:
        examples, fmt, labels = convert_rows({source.name: rows}, config, on_error=unreadable)
    if unreadable.errors and "unreadable" not in drop:
        first = min(unreadable.errors, key=lambda error: error.line or 0)
        raise DataError(first.file, first.line, first.problem, f"{len(unreadable.errors)} unreadable rows in all; "
                        "add `unreadable` to --drop to leave them out")
    reasons: dict[str, tuple[str, str]] = {}
    for row_source, error in zip(unreadable.sources(), unreadable.errors):
        reasons.setdefault(row_source, ("unreadable", error.problem))
    if any(examples.values()):
        report = build_report(examples, fmt, labels, {source.name: str(source)}, tokenizer, config.max_length,
                              config.loss_on, config.check)
        for finding in report.findings:
            if finding.kind in drop:
                for row_source, why in finding.flagged:
                    reasons.setdefault(row_source, (finding.kind, why))
    kept = [row for row in rows if row.source not in reasons]
    _write_rows(kept, family, source, target)
    read = {row.source for row in rows}
    removed = sorted(((s, kind, why) for s, (kind, why) in reasons.items()), key=lambda item: _file_line(item[0]))
    total = len(rows) + sum(1 for s, _, _ in removed if s not in read)  # rows too broken to read are rows too
    return CleanResult(str(source), str(target), total, len(kept), removed)


def run_clean(source: str, target: str, config_path: str | None, drop: str | None, overrides: list[str]) -> str:
    """`tunesmith data clean`: the config (a run config, or the defaults for one file) with ``--drop`` and
    ``--set`` applied; returns the summary to print."""
    from tunesmith.config import apply_overrides, load_config, validate_config
    from tunesmith.models import load_tokenizer

    if drop is not None:
        kinds = [kind.strip() for kind in drop.split(",") if kind.strip()]
        overrides = [*overrides, f"data.check.drop=[{', '.join(kinds)}]"]
    if config_path:
        config = load_config(config_path, overrides)
    else:
        config = validate_config(apply_overrides({"data": {"path": source}}, overrides))
    _output_family(Path(source), Path(target))  # OUT == IN or a wrong OUT name fails before the model loads
    return clean_file(source, target, config.data, load_tokenizer(config.model)).render()


def _family_of(path: Path) -> str | None:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    return _FAMILIES.get(suffixes[-1]) if suffixes else None


def _output_family(source: Path, target: Path) -> str:
    _refuse_same_file(source, target)
    wanted = _family_of(target)
    if wanted is None:
        raise ConfigError("OUT", f"{target}: cannot tell the output format from its name",
                          "end it in .jsonl (.jsonl.gz, .jsonl.zst), .csv or .parquet")
    given = None if source.is_dir() else _family_of(source)
    if given is not None and given != wanted:
        raise ConfigError("OUT", f"{target} is not a {given} file, but {source} is; the output keeps the input's "
                          "format", f"name OUT like {source.name}")
    if wanted != "jsonl" and target.suffix.lower() in _COMPRESSIONS:
        raise ConfigError("OUT", f"{target}: only JSON Lines output can be compressed")
    return wanted


def _refuse_same_file(source: Path, target: Path) -> None:
    same = source.resolve() == target.resolve() or (
        source.exists() and target.exists() and os.path.samefile(source, target))
    if same:
        raise ConfigError("OUT", f"{target} is the input file; data clean never overwrites its input",
                          "write to another file")


def _write_rows(rows: list[Row], family: str, source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(handle)
    try:
        if family == "jsonl":
            _write_jsonl(rows, Path(temporary), target.suffix.lower())
        elif family == "csv":
            _write_csv(rows, Path(temporary), source)
        else:
            _write_parquet(rows, Path(temporary), source)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; the output is an ordinary file
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _write_jsonl(rows: list[Row], path: Path, compression: str) -> None:
    data = "".join(json.dumps(row.data, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    if compression == ".gz":
        data = gzip.compress(data, mtime=0)  # mtime 0: the same rows give the same bytes
    elif compression == ".zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


def _write_csv(rows: list[Row], path: Path, source: Path) -> None:
    header = list(rows[0].data) if rows else _csv_header(source)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row.data for row in rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def _csv_header(source: Path) -> list[str]:
    if source.is_dir() or _family_of(source) != "csv" or source.suffix.lower() in _COMPRESSIONS:
        return []
    with source.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _write_parquet(rows: list[Row], path: Path, source: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(source) if source.is_file() and _family_of(source) == "parquet" else None
    table = pa.Table.from_pylist([row.data for row in rows], schema=schema)
    pq.write_table(table, path)


def _file_line(source: str) -> tuple[str, int]:
    file, _, line = source.rpartition(":")
    return (file, int(line)) if line.isdigit() else (source, 0)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
