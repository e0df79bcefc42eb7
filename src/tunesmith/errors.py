"""User-facing errors: one type per kind of user mistake.

The CLI prints ``str(error)`` on one line and exits non-zero; no traceback reaches the user.
"""

from __future__ import annotations


class TunesmithError(Exception):
    """Base class of every error tunesmith raises for a user mistake or an unusable input."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        text = " ".join(self.message.split())  # always one line
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(TunesmithError):
    """A config key is unknown or holds a bad value. ``key`` is the dotted path, e.g. ``train.learning_rate``."""

    def __init__(self, key: str, problem: str, hint: str | None = None):
        self.key = key
        self.problem = problem
        super().__init__(f"config: {key}: {problem}" if key else f"config: {problem}", hint)


class DataError(TunesmithError):
    """A data file or one of its rows cannot be used. ``line`` is 1-based (a CSV row number for CSV, the array
    index + 1 for JSON arrays, the row index + 1 for Parquet); ``None`` when the problem is the whole file."""

    def __init__(self, file: str, line: int | None, problem: str, hint: str | None = None):
        self.file = str(file)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.location}: {problem}", hint)

    @property
    def location(self) -> str:
        """``FILE:LINE``, or ``FILE`` for a problem with the whole file."""
        return f"{self.file}:{self.line}" if self.line is not None else self.file


class NoUsableRowsError(DataError):
    """Not one row of a file (or glob) can be used. Raised after each bad row went to the reader's ``on_error``;
    the error names the first, and `data check` puts the list of all of them in ``report``."""

    report: str | None = None


class ModelError(TunesmithError):
    """A model cannot be found, downloaded or loaded (e.g. a Hub id that is neither cached nor downloadable)."""


class RunError(TunesmithError):
    """A run directory is missing or lacks what a command needs (e.g. ``eval`` before ``train``)."""
