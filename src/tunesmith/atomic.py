"""Files and folders that appear whole or not at all (checkpoints, best weights, exports, the model cache, run
summaries, `data clean` output).

Everything is written under a hidden temp name beside its final place, flushed to disk (fsync), and renamed into
place: a rename within one filesystem is atomic, so a crash mid-write leaves the previous version intact, and
the fsyncs make the new version survive a power cut once the rename is done.

Two folders that must change together (an export's `adapter/` and `merged/`) are replaced under a journal:
once both are staged, a journal file names them; if the process dies during the renames, `recover_folders`
(called by the next command that locks the run folder) finishes them, so the pair always comes from one export.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tunesmith.errors import RunError

JOURNAL = ".replace-journal.json"
STAGING_MARK = "-staging-"
LOW_DISK_BYTES = 64 << 20
"""Less free space than this when a write fails means the disk is full (torch reports it only as "file write
failed")."""


def write_failure(exc: BaseException, path: Path) -> RunError | None:
    """A one-line `RunError` for a write that failed for lack of space or permission, else None."""
    number = getattr(exc, "errno", None)
    where = path if path.exists() else path.parent
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunError(f"cannot write {path}: {os.strerror(number).lower()}",
                        f"make {where} writable, or write somewhere else")
    try:
        free = shutil.disk_usage(where if where.exists() else Path.cwd()).free
    except OSError:
        free = None
    if number in (errno.ENOSPC, errno.EDQUOT) or (isinstance(exc, RuntimeError) and "write" in str(exc).lower()
                                                  and free is not None and free < LOW_DISK_BYTES):
        shown = f"{free / 2**20:.0f} MiB free" if free is not None else "no space left"
        return RunError(f"the disk is full: writing {path} failed ({shown}); what was there before is intact",
                        "free some space and run the command again; a training run continues with --resume")
    return None


@contextmanager
def _explained_write_failures(path: Path) -> Iterator[None]:
    try:
        yield
    except (OSError, RuntimeError) as exc:
        error = write_failure(exc, path)
        if error is None:
            raise
        raise error from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _aside(final: Path) -> Path:
    return final.with_name(final.name + ".old")


def fsync_path(path: Path) -> None:
    """Flush a file, or every file in a folder and the folder itself, to disk."""
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                fsync_path(child)
    fsync_entry(path)


def fsync_entry(path: Path) -> None:
    """Flush one file or folder itself (for a folder: its entries, so a rename into it is durable) and nothing
    below it. After a rename the parent needs only this: walking the parent would read other writers' work in
    progress (a shared cache folder) and cost a pass over everything in it."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final``; when the block succeeds, the file written there replaces ``final``.
    On failure the temp file is removed and ``final`` is left as it was."""
    final = Path(final)
    with _explained_write_failures(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{final.name}{STAGING_MARK}", dir=final.parent)
    os.close(handle)
    staging = Path(name)
    try:
        with _explained_write_failures(final):
            yield staging
            staging.chmod(0o666 & ~_umask())  # mkstemp makes it private (0600); the result is an ordinary file
            fsync_path(staging)
            os.replace(staging, final)
            fsync_entry(final.parent)
    finally:
        staging.unlink(missing_ok=True)  # gone already after a successful replace


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through `staged_file`."""
    with staged_file(Path(path)) as staging:
        staging.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def staged_folder(final: Path, first_wins: bool = False) -> Iterator[Path]:
    """Yield an empty folder beside ``final``; when the block succeeds, it replaces ``final``. On failure the
    staging folder is removed and ``final`` is left as it was.

    ``first_wins``: for entries that never change once written (a cache keyed on its content), which several
    processes may write at once: the folder is published by one rename that fails when ``final`` exists, and then
    the other writer's identical entry is kept and this one dropped. (Replacing would race on the aside name.)"""
    with _explained_write_failures(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}{STAGING_MARK}", dir=final.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the result is an ordinary folder
    try:
        with _explained_write_failures(final):
            yield staging
            fsync_path(staging)
            if first_wins:
                _publish(staging, final)
            else:
                replace_folder(staging, final)
            fsync_entry(final.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful rename


@contextmanager
def staged_folders(parent: Path, names: list[str]) -> Iterator[dict[str, Path]]:
    """Yield an empty staging folder per name; when the block succeeds, ``parent/<name>`` is replaced by each,
    together (see the module docstring). Names the block leaves empty are not replaced."""
    with _explained_write_failures(parent):
        parent.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f".together{STAGING_MARK}", dir=parent))
    folders = {name: root / name for name in names}
    try:
        with _explained_write_failures(parent / names[0]):
            for folder in folders.values():
                folder.mkdir()
            yield folders
            done = [name for name, folder in folders.items() if any(folder.iterdir())]
            fsync_path(root)
            write_atomic(parent / JOURNAL, json.dumps({"staging": root.name, "names": done}))  # the commit point
        recover_folders(parent)
    finally:
        if not (parent / JOURNAL).exists():  # past the commit point the journal needs the staging to finish
            shutil.rmtree(root, ignore_errors=True)


def recover_folders(parent: Path) -> None:
    """Finish what a killed writer left in ``parent``: journaled replacements are completed, and a folder left
    aside by `replace_folder` is put back."""
    journal = parent / JOURNAL
    if journal.is_file():
        entry = json.loads(journal.read_text(encoding="utf-8"))
        staging = parent / entry["staging"]
        for name in entry["names"]:
            if (staging / name).is_dir():
                replace_folder(staging / name, parent / name)
        fsync_path(parent)
        journal.unlink()
        shutil.rmtree(staging, ignore_errors=True)
    for old in parent.glob("*.old"):
        recover_folder(old.with_name(old.name[: -len(".old")]))


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


def _publish(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final`` unless ``final`` exists (then ``new`` is left to be removed)."""
    try:
        new.rename(final)
    except OSError as error:
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not final.is_dir():
            raise


def recover_folder(final: Path) -> None:
    """Finish a `replace_folder` interrupted between its two renames: the previous version is put back."""
    old = _aside(final)
    if not final.exists() and old.exists():
        old.rename(final)


def remove_folder(final: Path) -> None:
    """Remove ``final`` whole or not at all: it is first renamed to a staging name (which `remove_stale_staging`
    clears if we die while deleting it), so a reader never finds half of it."""
    recover_folder(final)
    if not final.exists():
        return
    doomed = final.with_name(f".{final.name}{STAGING_MARK}removed")
    if doomed.exists():
        shutil.rmtree(doomed)
    final.rename(doomed)
    fsync_entry(final.parent)
    shutil.rmtree(doomed)


def remove_stale_staging(parent: Path) -> list[Path]:
    """Delete the staging files and folders a killed writer left in ``parent`` (never picked up as results, but a
    checkpoint or an export is a whole model's worth of disk). Call only when no writer is running there, after
    `recover_folders` (a journaled staging folder is still needed)."""
    if (parent / JOURNAL).exists():
        return []
    stale = sorted(parent.glob(f".*{STAGING_MARK}*"))
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return stale
