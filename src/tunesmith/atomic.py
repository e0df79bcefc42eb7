"""Files and folders that appear whole or not at all (checkpoints, best weights, exports, the model cache, run
summaries, `data clean` output).

Everything is written under a hidden temp name beside its final place and renamed into place: a rename within
one filesystem is atomic, so a crash mid-write leaves the previous version intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _aside(final: Path) -> Path:
    return final.with_name(final.name + ".old")


@contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final``; when the block succeeds, the file written there replaces ``final``.
    On failure the temp file is removed and ``final`` is left as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}-", dir=final.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        staging.chmod(0o666 & ~_umask())  # mkstemp makes it private (0600); the result is an ordinary file
        os.replace(staging, final)
    finally:
        staging.unlink(missing_ok=True)  # gone already after a successful replace


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through `staged_file`."""
    with staged_file(Path(path)) as staging:
        staging.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``final``; when the block succeeds, it replaces ``final``. On failure the
    staging folder is removed and ``final`` is left as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-staging-", dir=final.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the result is an ordinary folder
    try:
        yield staging
        replace_folder(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful rename


def replace_folder(new: Path, final: Path) -> None:
    """Move ``new`` to ``final``. A folder cannot be renamed over a non-empty one, so an existing ``final`` is
    first renamed to ``<final>.old``; `recover_folder` puts it back if we die between the two renames."""
    recover_folder(final)
    old = _aside(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(final: Path) -> None:
    """Finish a `replace_folder` interrupted between its two renames: the previous version is put back."""
    old = _aside(final)
    if not final.exists() and old.exists():
        old.rename(final)


def remove_stale_staging(parent: Path) -> list[Path]:
    """Delete staging folders a killed writer left in ``parent`` (never picked up as results, but for full
    fine-tuning each one is a whole model's worth of disk). Call only when no writer is running there."""
    stale = sorted(p for p in parent.glob(".*-staging-*") if p.is_dir())
    for folder in stale:
        shutil.rmtree(folder)
    return stale
