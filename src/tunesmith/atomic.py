"""Files and folders that appear whole or not at all (checkpoints, best weights, exports, the model cache, run
summaries, `data clean` output).

Everything is written under a hidden temp name beside its final place, flushed to disk (fsync), and renamed into
place: a rename within one filesystem is atomic, so a crash mid-write leaves the previous version intact, and
the fsyncs make the new version survive a power cut once the rename is done.

Two folders that must change together (an export's `adapter/` and `merged/`) are replaced under a journal:
once both are staged, a journal file names them; if the process dies during the renames, `recover_folders`
(called by the next command that locks the run folder) finishes them, so the pair always comes from one export.

A write that fails for lack of space (or permission) is one line (`write_failure`): what was being written, that
its partial output is gone, what is intact, what to do. The libraries that write weights each say "disk full" their
own way (torch and numpy without an errno), so their messages are recognised and the free space checked.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tunesmith.errors import RunError, TunesmithError
from tunesmith.text import shorten

JOURNAL = ".replace-journal.json"
STAGING_MARK = "-staging-"
LOW_DISK_BYTES = 64 << 20
"""Less free space than this on the target's filesystem, after a write failed in a way the library reports without
an errno (torch, numpy), means the disk filled up: a write fails for lack of space only once the filesystem is
full, and a failed write of a large file leaves next to nothing free."""
OUT_OF_SPACE = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}
NOT_PERMITTED = (errno.EACCES, errno.EPERM, errno.EROFS)
NOTHING_LEFT = "nothing else was changed"
_OS_ERROR = re.compile(r"\(os error (\d+)\)")
"""How Rust's std::io::Error names an errno (safetensors: "I/O error: No space left on device (os error 28)")."""
_LIBRARY_WRITE_FAILURES = (
    # torch's zip writer (caffe2/serialize/inline_container.cc): its stream's failure ("basic_ios::clear: iostream
    # error"), then while closing, "unexpected pos N vs M"; a short write "PytorchStreamWriter failed writing file
    # data/0: file write failed"; the legacy format: "write(): fd 3 failed with <strerror>".
    re.compile(r"PytorchStreamWriter failed|unexpected pos \d+ vs \d+|iostream error|file write failed"
               r"|write\(\): fd \d+ failed"),
    re.compile(r"^\d+ requested and \d+ written$"),  # numpy's ndarray.tofile after a short fwrite, errno unset
    re.compile(r"Error while serializing: I/O error"),  # safetensors' save_file
)


def write_failure(exc: BaseException, path: Path, *, what: str | None = None, kept: str | None = None,
                  retry: str | None = None) -> RunError | None:
    """A one-line `RunError` for a write of ``path`` that failed for lack of space or permission (or, reported by
    torch, numpy or safetensors, for another fault of the disk), else None.

    The libraries that write weights report a full disk each their own way, so the whole exception chain is read:
    an errno (Python's OSError, also as the context of torch's error), Rust's "(os error 28)" (safetensors),
    the strerror text, and the messages torch and numpy give with no errno at all; for those the free space on
    ``path``'s filesystem decides. ``what`` names what was written (default: the path), ``retry`` what to do once
    there is space; ``kept``, for a staged write whose partial output is gone, says what is intact."""
    if not (isinstance(exc, OSError) or _OS_ERROR.search(str(exc)) or _said_by_a_writer(exc)):
        return None  # not a write's failure: a bug is not to be told as a full disk for an OSError in its context
    chain = _chain(exc)
    numbers = [number for error in chain for number in _errnos(error)]
    denied = next((number for number in numbers if number in NOT_PERMITTED), None)
    if denied is not None:
        return RunError(f"cannot write {path}: {os.strerror(denied).lower()}",
                        f"make {path if path.exists() else path.parent} writable, or write somewhere else")
    free = _free_space(_existing(path))
    full = next((number for number in numbers if number in OUT_OF_SPACE), None)
    library = next((error for error in chain if _said_by_a_writer(error)), None)
    if full is None and library is not None and free is not None and free[0] < LOW_DISK_BYTES:
        full = errno.ENOSPC
    if full is not None:
        return RunError(f"{OUT_OF_SPACE[full]} ({_describe_free(free)}): {_failed(what or path, '', kept)}",
                        retry or "free some space and run the command again")
    if library is not None:  # the disk has room: another fault of it (an I/O error, a file-size limit)
        said = shorten(" ".join(str(library).split()), 120)
        return RunError(_failed(what or path, f" ({said})", kept), "check the disk (e.g. `dmesg`), then run the "
                        "command again")
    return None


def _failed(what: str | Path, detail: str, kept: str | None) -> str:
    return f"writing {what} failed{detail}" + (f" and the part written was removed; {kept}" if kept else "")


def _said_by_a_writer(error: BaseException) -> bool:
    return any(shape.search(str(error)) for shape in _LIBRARY_WRITE_FAILURES)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or during (torch raises its second error while closing after the
    first)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _errnos(error: BaseException) -> list[int]:
    found = [error.errno] if isinstance(getattr(error, "errno", None), int) else []
    text = str(error)
    found += [int(number) for number in _OS_ERROR.findall(text)]
    found += [number for number in (*OUT_OF_SPACE, *NOT_PERMITTED) if os.strerror(number) in text]
    return found


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent: the filesystem the write went to."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_space(where: Path) -> tuple[int, int | None] | None:
    """Bytes free to this user on ``where``'s filesystem, and free inodes (None where the filesystem has no count)."""
    try:
        stats = os.statvfs(where)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize, stats.f_favail if stats.f_files else None


def _describe_free(free: tuple[int, int | None] | None) -> str:
    if free is None:
        return "its free space cannot be read"
    space, inodes = free
    shown = f"{_size(space)} free"
    return f"no file entries (inodes) left, {shown}" if inodes == 0 else shown


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if count >= 10 else f"{count:.1f} {unit}"
    raise AssertionError("unreachable")


def _kept(path: Path) -> str:
    return f"the previous {path.name} is intact" if path.exists() else NOTHING_LEFT


@contextmanager
def _explained_write_failures(path: Path, what: str | None = None, kept: str | None = None,
                              retry: str | None = None) -> Iterator[None]:
    """Turn a write of ``path`` that fails for lack of space or permission into `write_failure`'s one line (the
    other arguments are its). The line is decided before the block's own clean-up runs, on the filesystem as the
    failure left it; tunesmith's own errors pass through."""
    kept = kept or _kept(Path(path))  # before the write: afterwards the half-written target may exist
    try:
        yield
    except TunesmithError:
        raise
    except Exception as exc:  # safetensors' SafetensorError is neither OSError nor RuntimeError
        error = write_failure(exc, Path(path), what=what, kept=kept, retry=retry)
        if error is None:
            raise
        # The library's error stays reachable (as the line's context) and its frames hold torch's writer, whose
        # open file would keep the removed partial file's space taken: the frames let go of it now.
        for cause in _chain(exc):
            traceback.clear_frames(cause.__traceback__)
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
def staged_file(final: Path, what: str | None = None, kept: str | None = None,
                retry: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``final``; when the block succeeds, the file written there replaces ``final``.
    On failure the temp file is removed and ``final`` is left as it was; a full disk or a refused write is one line
    (`write_failure`, which ``what``, ``kept`` and ``retry`` go to)."""
    final = Path(final)
    with _explained_write_failures(final, what, kept, retry):
        final.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{final.name}{STAGING_MARK}", dir=final.parent)
    os.close(handle)
    staging = Path(name)
    try:
        with _explained_write_failures(final, what, kept, retry):
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
def staged_folder(final: Path, first_wins: bool = False, what: str | None = None, kept: str | None = None,
                  retry: str | None = None) -> Iterator[Path]:
    """Yield an empty folder beside ``final``; when the block succeeds, it replaces ``final``. On failure the
    staging folder is removed and ``final`` is left as it was; a full disk or a refused write is one line
    (`write_failure`, which ``what``, ``kept`` and ``retry`` go to).

    ``first_wins``: for entries that never change once written (a cache keyed on its content), which several
    processes may write at once: the folder is published by one rename that fails when ``final`` exists, and then
    the other writer's identical entry is kept and this one dropped. (Replacing would race on the aside name.)"""
    with _explained_write_failures(final, what, kept, retry):
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}{STAGING_MARK}", dir=final.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the result is an ordinary folder
    try:
        with _explained_write_failures(final, what, kept, retry):
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
def staged_folders(parent: Path, names: list[str], what: str | None = None, kept: str | None = None,
                   retry: str | None = None) -> Iterator[dict[str, Path]]:
    """Yield an empty staging folder per name; when the block succeeds, ``parent/<name>`` is replaced by each,
    together (see the module docstring). Names the block leaves empty are not replaced. A full disk or a refused
    write is one line (`write_failure`, which ``what``, ``kept`` and ``retry`` go to; ``what`` defaults to the
    folders' paths)."""
    what = what or " and ".join(str(parent / name) for name in names)
    if kept is None:
        there = [name for name in names if (parent / name).exists()]
        kept = (f"the previous {' and '.join(there)} {'are' if len(there) > 1 else 'is'} intact" if there
                else NOTHING_LEFT)
    with _explained_write_failures(parent, what, kept, retry):
        parent.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f".together{STAGING_MARK}", dir=parent))
    folders = {name: root / name for name in names}
    try:
        with _explained_write_failures(parent, what, kept, retry):
            for folder in folders.values():
                folder.mkdir()
            yield folders
            done = [name for name, folder in folders.items() if any(folder.iterdir())]
            fsync_path(root)
            with staged_file(parent / JOURNAL, what, kept, retry) as journal:  # the commit point
                journal.write_text(json.dumps({"staging": root.name, "names": done}), encoding="utf-8")
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
