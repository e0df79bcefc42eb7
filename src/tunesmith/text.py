"""Small text helpers shared by every stage: one normalizer, one way to quote a value in an error."""

from __future__ import annotations

import re
import reprlib
from typing import Any

_PUNCTUATION = re.compile(r"[^\w\s]+")


def normalize_text(text: str, keep_punctuation: bool = True) -> str:
    """Case-folded, whitespace runs collapsed to one space, and with ``keep_punctuation=False`` punctuation
    replaced by spaces first.

    With punctuation: exact match of answers (evaluation) and copied answers (data check; a task may be to
    punctuate its input). Without: near-duplicate shingles, where "Hello!" and "hello" are the same words.
    """
    folded = text.casefold()
    if not keep_punctuation:
        folded = _PUNCTUATION.sub(" ", folded)
    return " ".join(folded.split())


def preview(value: Any, limit: int = 60) -> str:
    """``value`` as Python writes it, cut short: an error line should not quote a whole document. A long string or
    a deep or wide container is never written out whole first (a config value can be megabytes)."""
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    else:
        short = reprlib.Repr()
        short.maxlevel, short.maxstring, short.maxother = 4, limit, limit
        short.maxlist = short.maxtuple = short.maxdict = short.maxset = short.maxfrozenset = limit
        text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters (whitespace runs collapsed), ending in an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def count_of(count: int, noun: str) -> str:
    """``1 row``, ``3 rows``, ``2 breaches``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}es" if noun.endswith(("s", "x", "ch", "sh")) else f"{count} {noun}s"


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: JSON lets a client send a lone surrogate (``"\\ud800"``), which
    Python holds in a str but no file, database or tokenizer takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(text: str) -> str:
    """A path as it can be printed and written to JSON: a byte of a file name that is not UTF-8 (which Python
    holds as a lone surrogate) shown as ``\\xff``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
