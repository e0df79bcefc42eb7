"""Expand a data path's glob: the one expander used by everything that reads user data (`tunesmith.data.readers`)
and by everything that must know which files that reading touches (the data cache's fingerprint, `data clean`
refusing to overwrite one of its inputs), so a check always sees exactly what the reader reads.

`**` matches any number of folders, none included, and names starting with `.` match only a pattern part that
starts with `.`, as in `glob.glob(recursive=True)`. Unlike `glob`, symlinks are followed once: a folder reached
again (a symlink loop, or two links to one folder) is not walked again, and a file reached by two names is listed
once, by its name without a symlink where it has one. (`glob` follows a loop until the path is too long: a link
from `data/sub/loop` to `data` read each file 41 times.)
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator
from pathlib import Path

from tunesmith.errors import DataError
from tunesmith.text import is_unicode, shown_name

GLOB_CHARACTERS = "*?["


def is_glob(path: str) -> bool:
    return any(character in path for character in GLOB_CHARACTERS)


def expand_data_path(path: str | Path) -> list[Path]:
    """What a data path names: the path itself when it is no glob or exists under that very name (a file called
    `a[1].jsonl`), else the glob's matches in sorted order, each real file once (none: an empty list)."""
    text = str(path)
    if not is_glob(text) or os.path.lexists(text):
        return [_utf8_named(Path(text))]
    return expand_glob(text)


def expand_glob(pattern: str) -> list[Path]:
    """The files and folders ``pattern`` matches, sorted, each real one once (see the module docstring)."""
    parts = Path(pattern).parts
    literal = next((index for index, part in enumerate(parts) if is_glob(part)), len(parts))
    start = Path(*parts[:literal]) if literal else Path()
    matches = sorted(set(_match(start, parts[literal:])))
    by_real: dict[str, Path] = {}
    for match in matches:
        real = os.path.realpath(match)
        if real not in by_real or (_via_symlink(by_real[real]) and not _via_symlink(match)):
            by_real[real] = match
    return sorted(_utf8_named(match) for match in by_real.values())


def files_under(folder: Path) -> list[Path]:
    """The files in ``folder`` and the folders below it (as `folder/**/*` matches them), sorted."""
    return [path for path in expand_glob(os.path.join(glob.escape(str(folder)), "**", "*")) if path.is_file()]


def _match(folder: Path, parts: tuple[str, ...]) -> Iterator[Path]:
    if not parts:
        if os.path.lexists(folder):
            yield folder
        return
    part, rest = parts[0], parts[1:]
    if part == "**":
        for sub in _folders_under(folder):
            if rest:
                yield from _match(sub, rest)
            else:  # a trailing `**`: the folder and everything below it
                yield sub
                yield from (entry for entry in _entries(sub) if not entry.name.startswith(".") and not entry.is_dir())
    elif is_glob(part):
        for entry in _entries(folder):
            if fnmatch.fnmatchcase(entry.name, part) and (part.startswith(".") or not entry.name.startswith(".")):
                yield from _match(entry, rest)
    else:
        yield from _match(folder / part, rest)


def _folders_under(root: Path) -> list[Path]:
    """``root`` and every folder below it whose name does not start with `.`, each real folder once: folders
    reached without a symlink first, so a link to a folder already walked (a loop) is not followed again."""
    if not root.is_dir():
        return []
    seen: set[str] = set()
    found: list[Path] = []
    links: list[Path] = []
    stack = [root]
    while stack or links:
        folder = stack.pop() if stack else links.pop(0)
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        found.append(folder)
        for entry in reversed(_entries(folder)):
            if not entry.name.startswith(".") and entry.is_dir():
                (links if entry.is_symlink() else stack).append(entry)
    return found


def _entries(folder: Path) -> list[Path]:
    """The entries of ``folder``, sorted; none when it is not a folder. A folder that cannot be listed is an
    error: skipping it would read less data than the pattern names, silently."""
    try:
        with os.scandir(folder) as scan:
            return sorted(folder / entry.name for entry in scan)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise DataError(shown_name(str(folder)), None, f"cannot list this folder: {exc.strerror}") from None


def _via_symlink(path: Path) -> bool:
    return os.path.realpath(path) != os.path.abspath(path)


def _utf8_named(path: Path) -> Path:
    """A file name that is not UTF-8 would reach row locations, reports and JSON records that cannot hold it."""
    if not is_unicode(str(path)):
        raise DataError(shown_name(str(path)), None, "the file name is not valid UTF-8",
                        "rename the file (tunesmith records file names in JSON and YAML, which are UTF-8)")
    return path
