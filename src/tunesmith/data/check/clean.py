"""`tunesmith data clean IN OUT`: write a copy of a data file without the rows the data check flags.

Which findings remove a row is ``data.check.drop`` (or ``--drop kind,kind``); of each duplicate or
near-duplicate group the first row stays (the check only flags the later ones), and for conflicting labels the
rows that disagree with their input's most common label go. ``unreadable`` rows are left out when it is in the
list; otherwise one unreadable row stops the clean (its rows cannot be written back as they were).

The output holds the original row objects (same keys and values, not the normalized conversations) in the
format family of the input: JSON Lines for JSONL/JSON/compressed JSONL input (compressed again when OUT ends in
``.gz`` or ``.zst``), CSV for CSV, Parquet (with the input's schema) for Parquet. A folder or glob input is
written in the family OUT's name asks for. IN is only read: OUT may not be any file IN reads (globs expanded,
symlinks and `..` resolved) nor lie inside an input folder, an existing OUT is replaced only with ``--overwrite``,
and OUT is written to a temporary file beside it and renamed into place.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from tunesmith.atomic import staged_file
from tunesmith.config import apply_overrides, load_config, validate_config
from tunesmith.config.schema import DataConfig
from tunesmith.data.check.data_report import CheckSettings, ExamplesToCheck, check_examples
from tunesmith.data.example import location_order
from tunesmith.data.formats import convert_rows
from tunesmith.data.globs import expand_data_path
from tunesmith.data.readers import data_files, read_rows
from tunesmith.data.rows import Row, RowErrors
from tunesmith.errors import ConfigError, DataError
from tunesmith.json_files import jsonl_text
from tunesmith.models import load_tokenizer

REMOVED_LISTED = 50
"""Removed rows named in the summary; the rest are counted."""
_FAMILIES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_COMPRESSIONS = (".gz", ".zst")


@dataclass
class CleanResult:
    input_path: str
    output_path: str
    total: int
    """Rows in IN, readable or not."""
    kept: int
    removed: list[tuple[str, str, str]] = field(default_factory=list)
    """``(FILE:LINE, kind, why)`` of every row left out, in file order."""

    def counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind, _ in self.removed).most_common())

    def render(self) -> str:
        lines = [f"kept {self.kept} of {self.total} rows: wrote {self.output_path}"]
        if not self.removed:
            return "\n".join([*lines, "removed nothing"])
        lines.append("removed: " + ", ".join(f"{kind} {count}" for kind, count in self.counts().items()))
        for location, kind, why in self.removed[:REMOVED_LISTED]:
            lines.append(f"  {location}: {kind}" + (f" ({why})" if why else ""))
        if len(self.removed) > REMOVED_LISTED:
            lines.append(f"  ... and {len(self.removed) - REMOVED_LISTED} more")
        return "\n".join(lines)


def clean_file(input_path: str | Path, output_path: str | Path, config: DataConfig, tokenizer,
               overwrite: bool = False) -> CleanResult:
    """Check ``input_path`` as one split with ``config`` (format, columns, ``check`` settings and ``check.drop``)
    and write the rows no dropped finding names to ``output_path`` (which may exist only with ``overwrite``)."""
    input_path, output_path = Path(input_path), Path(output_path)
    family = _output_family(input_path, output_path, overwrite)
    drop = set(config.check.drop)
    unreadable = RowErrors()
    rows = read_rows(input_path, on_error=unreadable)
    examples, fmt, labels = convert_rows({input_path.name: rows}, config, on_error=unreadable)
    if unreadable.errors and "unreadable" not in drop:
        first = min(unreadable.errors, key=lambda error: error.line or 0)
        raise DataError(first.file, first.line, first.problem, f"{len(unreadable.errors)} unreadable rows in all; "
                        "add `unreadable` to --drop to leave them out")
    reasons: dict[str, tuple[str, str]] = {}
    for location, error in zip(unreadable.locations(), unreadable.errors):
        reasons.setdefault(location, ("unreadable", error.problem))
    if any(examples.values()):
        checked = ExamplesToCheck(examples, fmt, labels, {input_path.name: str(input_path)})
        report = check_examples(checked, CheckSettings.of(tokenizer, config))
        for finding in report.findings:
            if finding.kind in drop:
                for location, why in finding.flagged:
                    reasons.setdefault(location, (finding.kind, why))
    kept = [row for row in rows if row.location not in reasons]
    _write_rows(kept, family, input_path, output_path)
    read = {row.location for row in rows}
    removed = sorted(((s, kind, why) for s, (kind, why) in reasons.items()), key=lambda item: location_order(item[0]))
    total = len(rows) + sum(1 for s, _, _ in removed if s not in read)  # rows too broken to read are rows too
    return CleanResult(str(input_path), str(output_path), total, len(kept), removed)


def run_clean(input_path: str, output_path: str, config_path: str | None, drop: str | None,
              overrides: list[str], overwrite: bool = False) -> str:
    """`tunesmith data clean`: the config (a run config, or the defaults for one file) with ``--drop`` and
    ``--set`` applied; returns the summary to print."""
    if drop is not None:
        kinds = [kind.strip() for kind in drop.split(",") if kind.strip()]
        overrides = [*overrides, f"data.check.drop=[{', '.join(kinds)}]"]
    if config_path:
        config = load_config(config_path, overrides)
    else:
        config = validate_config(apply_overrides({"data": {"path": input_path}}, overrides))
    _output_family(Path(input_path), Path(output_path), overwrite)  # a wrong OUT fails before the model loads
    return clean_file(input_path, output_path, config.data, load_tokenizer(config.model), overwrite).render()


def _family_of(path: Path) -> str | None:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    return _FAMILIES.get(suffixes[-1]) if suffixes else None


def _output_family(input_path: Path, output_path: Path, overwrite: bool = False) -> str:
    _refuse_inputs(input_path, output_path)
    if output_path.exists() and not overwrite:
        raise ConfigError("OUT", f"{output_path} already exists; data clean does not replace a file unless asked",
                          "pass --overwrite to replace it, or name another file")
    if output_path.is_dir():
        raise ConfigError("OUT", f"{output_path} is a folder", "name a file to write")
    wanted = _family_of(output_path)
    if wanted is None:
        raise ConfigError("OUT", f"{output_path}: cannot tell the output format from its name",
                          "end it in .jsonl (.jsonl.gz, .jsonl.zst), .csv or .parquet")
    given = None if input_path.is_dir() else _family_of(input_path)
    if given is not None and given != wanted:
        raise ConfigError("OUT", f"{output_path} is not a {given} file, but {input_path} is; the output keeps the "
                          "input's format", f"name OUT like {input_path.name}")
    if wanted != "jsonl" and output_path.suffix.lower() in _COMPRESSIONS:
        raise ConfigError("OUT", f"{output_path}: only JSON Lines output can be compressed")
    return wanted


def _refuse_inputs(input_path: Path, output_path: Path) -> None:
    """OUT may not be any file IN reads (a glob expanded as the reader expands it, `**` and symlinks included, a
    dataset folder's files, `..` resolved), nor lie inside an input folder."""
    target = output_path.resolve()
    for source in data_files([str(input_path)]):
        same = source.resolve() == target or (source.exists() and output_path.exists()
                                               and source.samefile(output_path))
        if same:
            raise ConfigError("OUT", f"{output_path} is one of the input files ({source}); data clean never "
                              "overwrites its input", "write to another file")
    for folder in (match for match in expand_data_path(str(input_path)) if match.is_dir()):
        if target.is_relative_to(folder.resolve()):
            raise ConfigError("OUT", f"{output_path} is inside the input folder {folder}",
                              "write outside the dataset folder")


def _write_rows(rows: list[Row], family: str, input_path: Path, output_path: Path) -> None:
    with staged_file(output_path) as staging:
        if family == "jsonl":
            _write_as_jsonl(rows, staging, output_path.suffix.lower())
        elif family == "csv":
            _write_as_csv(rows, staging, input_path)
        else:
            _write_as_parquet(rows, staging, input_path)


def _write_as_jsonl(rows: list[Row], path: Path, compression: str) -> None:
    data = jsonl_text(row.data for row in rows).encode("utf-8")
    if compression == ".gz":
        data = gzip.compress(data, mtime=0)  # mtime 0: the same rows give the same bytes
    elif compression == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


def _write_as_csv(rows: list[Row], path: Path, input_path: Path) -> None:
    header = list(rows[0].data) if rows else _csv_header(input_path)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row.data for row in rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def _csv_header(input_path: Path) -> list[str]:
    if input_path.is_dir() or _family_of(input_path) != "csv" or input_path.suffix.lower() in _COMPRESSIONS:
        return []
    with input_path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _write_as_parquet(rows: list[Row], path: Path, input_path: Path) -> None:
    schema = pq.read_schema(input_path) if input_path.is_file() and _family_of(input_path) == "parquet" else None
    table = pa.Table.from_pylist([row.data for row in rows], schema=schema)
    pq.write_table(table, path)
