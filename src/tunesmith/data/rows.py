"""A row of a data file, which remembers the file and line it came from, and the errors met reading rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunesmith.errors import DataError

OnError = Callable[[DataError], None]
"""Where lenient reading sends each bad row's error (the row is skipped); strict reading raises it instead."""


@dataclass(frozen=True)
class Row:
    """One record of a data file. ``line`` is where it starts: the physical line for JSONL, JSON and CSV (the
    header is line 1), the row index + 1 for Parquet and saved datasets."""

    file: str
    line: int
    data: dict[str, Any]

    @property
    def location(self) -> str:
        """``FILE:LINE``, as every error and finding names the row."""
        return f"{self.file}:{self.line}"


class RowErrors:
    """An ``on_error`` callback for lenient reading: keeps every bad row's `DataError`."""

    def __init__(self) -> None:
        self.errors: list[DataError] = []

    def __call__(self, error: DataError) -> None:
        self.errors.append(error)

    def locations(self) -> list[str]:
        return [error.location for error in self.errors]
