"""The layout of a run folder, and the lock that makes one process at a time its writer.

Every stage reads and writes its files through these names. A stage that writes holds `RunDir.lock()`: an OS
file lock (`flock`) on ``.lock``, which the kernel releases when the process ends, so a killed run never leaves
a stale lock. The lock is reentrant within a process (the pipeline holds it around stages that take it too).
Its holder writes who it is into ``.lock`` (pid, host and the subcommand's name, never its arguments: a database URL
or a key given on the command line is a secret, and the file is only the owner's to read): `RunDir.lock_holder`
reads that back for the UI and for the error a second writer gets, without touching the lock itself. Releasing the
lock removes the file; a killed holder leaves it, naming a dead pid.
Taking it first finishes or cleans up what a killed writer left (`tunesmith.atomic.recover_folders`,
`remove_stale_staging`): with the lock held, no other writer can be in the middle of them.

tunesmith writes only into folders it made: each carries ``origin.json`` (`origin_record`: made by tunesmith, as
a run, a sweep, a comparison), and a folder that holds anything else is refused before a byte is written
(`require_ours`, which the lock calls, and `claim_folder` for the folders other commands make). A file a command
writes at a path the user names (``--out``) is never one of such a folder's records (`check_out_target`).

In a job of several processes rank 0 is the writer and alone holds the lock (and repairs); for the others
`lock` does nothing, and code that all processes run waits at a `distributed.barrier` after taking it, before
they read what the repair may change.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from tunesmith import __version__, distributed
from tunesmith.atomic import JOURNAL, STAGING_MARK, recover_folder, recover_folders, remove_stale_staging
from tunesmith.config import RunConfig, validate_config
from tunesmith.config.loading import read_yaml
from tunesmith.errors import ConfigError, RunError
from tunesmith.json_files import write_json
from tunesmith.sweep_folder import BEST_CONFIG, STUDY_FILE, SWEEP_FILE, TRIALS_FOLDER
from tunesmith.sweep_folder import LOCK_FILE as SWEEP_LOCK

log = logging.getLogger("tunesmith")

T = TypeVar("T")
_HELD: dict[str, list] = {}
"""Locks this process holds: resolved run folder → [file descriptor, depth]."""
_COMMAND: list[str] = []
"""The subcommand this process runs, as `name_this_command` was told."""


def name_this_command(name: str) -> None:
    """Tell the lock what this process runs (``tunesmith train``): the CLI calls it with the subcommand's name, so
    that no argument (a password in a URL, an API key) is written into a lock file."""
    _COMMAND[:] = [name]


def _command_name() -> str:
    """The named subcommand; else the program (``pytest``, a script's name), never its arguments."""
    if _COMMAND:
        return _COMMAND[0]
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] and not sys.argv[0].startswith("-") else None
    if program is None:
        return "python"  # python -c
    return program.parent.name if program.name == "__main__.py" else program.name  # python -m NAME: NAME


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run folder's lock (`RunDir.lock_holder`)."""

    pid: int
    host: str
    command: str
    """What the holder runs: the subcommand (``tunesmith train``), without its arguments (`name_this_command`)."""
    alive: bool | None
    """Whether the holder still runs: its pid is alive here and started before it took the lock (a pid reused since
    the holder died belongs to a later process). None for a holder on another machine (a run folder on a shared
    file system): this one cannot ask."""

    def __str__(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where}: {self.command}"


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    config_path = property(lambda self: self.root / "config.yaml")
    """The resolved config of the run (every default filled in)."""
    origin = property(lambda self: self.root / "origin.json")
    """Where the run's config came from (its resolved path) and the fingerprint of its settings: what
    `--resume CONFIG` matches runs by."""
    lock_file = property(lambda self: self.root / ".lock")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    """One JSON object per line: training steps (`step`, `loss`, `lr`, `tokens_per_s`, ...) and validations
    (`step`, `val_loss`)."""
    tensorboard = property(lambda self: self.root / "tensorboard")
    checkpoints = property(lambda self: self.root / "checkpoints")
    best = property(lambda self: self.root / "checkpoints" / "best")
    """Weights with the lowest validation loss: a PEFT adapter folder (lora, dora, qlora) or a full HF model folder
    (full)."""
    train_summary = property(lambda self: self.root / "train_summary.json")
    init_from = property(lambda self: self.root / "init_from.json")
    """For a run with `model.init_from`: that run (resolved) and the fingerprint of the weights this run started
    from (`tunesmith.models.init_from`), written when training starts."""
    data_summary = property(lambda self: self.root / "data_summary.json")
    eval_json = property(lambda self: self.root / "eval.json")
    predictions = property(lambda self: self.root / "predictions.jsonl")
    gate_json = property(lambda self: self.root / "gate.json")
    """The release gate's result (`tunesmith gate`, `tunesmith.results.gate`)."""
    trackers_json = property(lambda self: self.root / "trackers.json")
    """Each experiment tracker's run id (`train.report_to`, `tunesmith.tracking`), so later stages add to it."""
    reference = property(lambda self: self.root / "reference.json")
    """What healthy traffic looks like for the run, from its held-out rows (`tunesmith.results.reference`): written
    by evaluation, read by `tunesmith serve` (calibration) and `tunesmith monitor` (drift)."""
    novelty = property(lambda self: self.root / "novelty")
    """The training inputs' embeddings (`tunesmith.retrieval.novelty.NoveltyIndex`) each request's novelty is
    measured against."""
    adapter = property(lambda self: self.root / "adapter")
    merged = property(lambda self: self.root / "merged")
    gguf = property(lambda self: self.root / "gguf")
    """`tunesmith export --format gguf`: ``<run-name>-<quant>.gguf`` files and an Ollama ``Modelfile``."""
    timings = property(lambda self: self.root / "timings.json")
    rag = property(lambda self: self.root / "rag")
    """Rows with retrieved context and `summary.json` of what retrieval did, when `rag` changes a run's rows."""
    """Seconds each pipeline stage took, and the total."""
    failure = property(lambda self: self.root / "failure.json")
    """Written when a stage of the pipeline ended with an error (the stage, the error, when); removed when the run
    is resumed. A killed process leaves none: its run reads as stopped, not failed."""
    report_md = property(lambda self: self.root / "report.md")
    report_html = property(lambda self: self.root / "report.html")

    def config(self) -> RunConfig:
        """The run's resolved `RunConfig`."""
        if not self.config_path.is_file():
            raise RunError(f"{self.root} is not a tunesmith run folder (no config.yaml)")
        try:
            raw = read_yaml(self.config_path.read_text(encoding="utf-8"), str(self.config_path))  # bounded aliases
            if not isinstance(raw, dict):
                raise ValueError("it does not hold a mapping of sections")
            return validate_config(raw)
        except (yaml.YAMLError, UnicodeDecodeError, ValueError, ConfigError) as exc:
            raise RunError(f"{self.config_path} is damaged: {' '.join(str(exc).split())}",
                           "the run's settings are lost; start a new run") from None

    def best_weights(self) -> Path:
        """`best`, after finishing an interrupted replacement (see `tunesmith.atomic`); an error if training
        never produced one (in a job of several processes rank 0 finishes the replacement)."""
        if distributed.is_main():
            recover_folder(self.best)
        return self.require(self.best, "train")

    def require(self, path: Path, produced_by: str) -> Path:
        if not path.exists():
            raise RunError(f"{path} does not exist", f"run `tunesmith {produced_by}` first")
        return path

    @contextmanager
    def lock(self) -> Iterator[RunDir]:
        """Hold the run folder's lock (see the module docstring); a `RunError` naming the holder's pid when
        another process holds it."""
        key = str(self.root.resolve())
        if key in _HELD:
            _HELD[key][1] += 1
            try:
                yield self
            finally:
                _HELD[key][1] -= 1
            return
        if not distributed.is_main():
            yield self
            return
        if not self.root.is_dir():
            raise RunError(f"{self.root} is not a folder", "give the path of a run folder")
        require_ours(self.root, "run")  # before the lock file: nothing is written into a folder tunesmith did not make
        descriptor = self._open_lock()
        if not self.origin.exists() and not any(entry.name != self.lock_file.name for entry in self.root.iterdir()):
            # A new folder a writer takes (training called from Python, `--run-dir NEW`): marked before the first
            # record, so the next command (a resume) knows it for tunesmith's.
            write_json(self.origin, origin_record("run"))
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command_name()}
        os.write(descriptor, json.dumps(holder).encode())
        _HELD[key] = [descriptor, 1]
        try:
            self._repair()
            yield self
        finally:
            _HELD.pop(key)
            # Removed while still held: a process that opened the file before the unlink and takes the lock after
            # it sees that the name no longer leads to its file and opens again (`_open_lock`).
            self.lock_file.unlink(missing_ok=True)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def _open_lock(self) -> int:
        """The locked, emptied, owner-only ``.lock`` (a `RunError` naming the holder when another process holds it)."""
        while True:
            descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                holder = self.lock_holder()
                raise RunError(f"run folder {self.root} is in use by another tunesmith process "
                               f"({holder or 'pid unknown'})",
                               "wait for it to end, or stop it; a process that dies releases the folder") from None
            try:
                current = os.stat(self.lock_file)
            except FileNotFoundError:
                current = None
            opened = os.fstat(descriptor)
            if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                break
            os.close(descriptor)  # its holder released and removed it between our open and our flock: again
        os.fchmod(descriptor, 0o600)  # a record left by an older tunesmith was readable by all
        os.ftruncate(descriptor, 0)
        return descriptor

    def lock_holder(self) -> LockHolder | None:
        """The process that holds the lock, or the last holder when it was killed (it leaves its record behind:
        see `LockHolder.alive`); None when no process holds it. Read from the record that `lock` writes,
        without asking the kernel for the lock itself: a non-blocking flock would, for that instant, make a writer
        starting up fail with "in use"."""
        try:
            record = json.loads(self.lock_file.read_text(encoding="utf-8"))
            written = self.lock_file.stat().st_mtime
            pid, host, command = record["pid"], record["host"], record["command"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return None  # no record, or one cut off as its writer wrote it
        if not (isinstance(pid, int) and pid > 0 and isinstance(host, str) and isinstance(command, str)):
            return None
        alive = process_alive(pid, started_by=written) if host == socket.gethostname() else None
        return LockHolder(pid=pid, host=host, command=command, alive=alive)

    def _repair(self) -> None:
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                recover_folders(folder)
                for stale in remove_stale_staging(folder):
                    log.info("removed %s, left by an interrupted write", stale)


MADE_BY = "tunesmith"
"""``made_by`` of the marker (`RunDir.origin`, ``origin.json``) tunesmith writes into every folder it makes."""
_RUN_RECORDS = frozenset(value.fget(RunDir(".")).parts[0] for value in vars(RunDir).values()
                         if isinstance(value, property) and value.fget(RunDir(".")).parts)
"""The names a run folder's records and record folders take (config.yaml, checkpoints, eval.json...)."""
_RECORDS = _RUN_RECORDS | {SWEEP_FILE, STUDY_FILE, SWEEP_LOCK, TRIALS_FOLDER, BEST_CONFIG,
                           "comparison.json", "predictions"}  # and what `tunesmith compare-rag` writes
_EARLIER_RUN = {"metrics.jsonl", "checkpoints", "train_summary.json", "data_summary.json", "timings.json",
                "failure.json", "eval.json", "gate.json"}
"""Beside config.yaml, what tells a run folder made before folders carried the marker (no user writes these)."""
SQLITE_HEADER = b"SQLite format 3\x00"


def origin_record(kind: str, **fields) -> dict:
    """The content of a folder's marker: made by tunesmith (which version), as what (``run``, ``sweep``...), plus
    ``fields`` (a run's config path and settings fingerprint)."""
    return {"made_by": MADE_BY, "kind": kind, "version": __version__, **fields}


def folder_kind(folder: Path) -> str | None:
    """What tunesmith made ``folder`` as (``run``, ``sweep``, ``comparison``...), from its marker, or for a folder
    made before folders carried one, from the records only tunesmith writes; None when tunesmith did not make it."""
    try:
        marker = json.loads((folder / RunDir(folder).origin.name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        marker = None
    if isinstance(marker, dict) and marker.get("made_by") == MADE_BY:
        return str(marker.get("kind"))
    if isinstance(marker, dict) and "fingerprint" in marker:
        return "run"  # the origin.json of a run made before the marker said who made it
    try:
        names = {entry.name for entry in folder.iterdir()}
    except OSError:
        return None
    if SWEEP_FILE in names:
        return "sweep"
    if "comparison.json" in names:
        return "comparison"
    if names & _EARLIER_RUN and "config.yaml" in names or _resolved_config(folder / "config.yaml"):
        return "run"
    left_by_a_write = any(name.startswith(".") and STAGING_MARK in name or name == JOURNAL for name in names)
    return "run" if left_by_a_write else None  # only an interrupted write of tunesmith's leaves these


def _resolved_config(path: Path) -> bool:
    """Whether ``path`` is a config as tunesmith writes a run's (`tunesmith.config.save_config`): every section,
    in the order of `RunConfig`'s fields (a run of an older version lacks the newest few). A config written by hand
    names the sections it changes. Read as lines, not parsed: a user's YAML is not trusted here."""
    try:
        with open(path, encoding="utf-8") as handle:
            sections = [line.split(":", 1)[0] for line in handle if line[:1].isalpha() and ":" in line]
    except (OSError, UnicodeDecodeError):
        return False
    fields = list(RunConfig.model_fields)
    return (len(sections) >= len(fields) - 6 and set(sections) <= set(fields)
            and sections == sorted(sections, key=fields.index))


def require_ours(folder: Path, kind: str = "run") -> None:
    """A `RunError` naming ``folder`` unless it is missing, empty or tunesmith's ``kind`` of folder: tunesmith
    writes only into folders it made (a user's config.yaml in a folder given as a run folder is never replaced,
    nor a run's report by a comparison written into it)."""
    try:
        names = sorted(entry.name for entry in folder.iterdir() if entry.name != RunDir(folder).lock_file.name)
    except FileNotFoundError:
        return  # to be made
    except NotADirectoryError:
        raise RunError(f"{folder} is a file, not a folder", "name a new or empty folder") from None
    found = folder_kind(folder) if names else kind
    if found is None:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise RunError(f"{folder} is not a folder tunesmith made (it holds {shown}); tunesmith writes only into a "
                       "new or empty folder, or one it made", "name another folder, or move those files out of it")
    if found != kind:
        raise RunError(f"{folder} is a tunesmith {found} folder, not a {kind} folder", "name another folder")


def claim_folder(folder: str | Path, kind: str) -> Path:
    """Make ``folder`` (and its parents) as tunesmith's ``kind`` of folder, or check that an existing one is empty
    or tunesmith's (`require_ours`); mark it (``origin.json``, `origin_record`) unless it carries a marker."""
    folder = Path(folder)
    require_ours(folder, kind)
    folder.mkdir(parents=True, exist_ok=True)
    if not RunDir(folder).origin.exists():
        write_json(RunDir(folder).origin, origin_record(kind))
    return folder


def check_out_target(target: str | Path, option: str = "--out", own: tuple[str, ...] = (),
                     writes_database: bool = False) -> Path:
    """``target`` when a command may write a file there; else a `RunError` naming it. Every ``--out``/``OUT`` of a
    command that writes a file checks its target here, after following symlinks: never a folder; never a record
    tunesmith reads back, i.e. anything inside a folder tunesmith made (`folder_kind`: a run, a sweep, a
    comparison) but a new, non-record name directly in it (``<run>/review_judgments.csv``), or ``own`` (paths in
    such a folder the command itself writes, e.g. ``labeling/queue.db``); and never a database unless the command
    writes one (a labels queue or a review database outside a run folder is a record too)."""
    path = Path(target)
    resolved = path.resolve()
    shown = f"{option} {target}" + ("" if resolved == path.absolute() else f" (it leads to {resolved})")
    if resolved.is_dir():
        raise RunError(f"{shown} is a folder", "name a file to write")
    folder = next((parent for parent in resolved.parents if folder_kind(parent) is not None), None)
    if folder is not None:
        inside = resolved.relative_to(folder)
        if inside.as_posix() not in own and (len(inside.parts) > 1 or inside.name in _RECORDS
                                             or inside.name.startswith(".")):
            raise RunError(f"{shown} is {inside} of {folder}, a record tunesmith reads back",
                           "name a file outside that folder, or a new name directly in it")
    if not writes_database and resolved.is_file():
        try:
            with open(resolved, "rb") as handle:
                database = handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        except OSError:
            database = False  # unreadable: the write reports it
        if database:
            raise RunError(f"{shown} is a database (SQLite), not a file this command replaces", "name another file")
    return path


def locked(stage: Callable[..., T]) -> Callable[..., T]:
    """A stage ``stage(config, run, ...)`` that holds the run folder's lock while it runs."""
    @functools.wraps(stage)
    def holding_the_lock(config, run: RunDir, *args, **kwargs) -> T:
        with run.lock():
            return stage(config, run, *args, **kwargs)

    return holding_the_lock


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether process ``pid`` of this machine is alive (another user's too) and, given ``started_by`` (seconds since
    the epoch), started by then: a pid written down by a process that has since died may name a later one. Where
    Linux's /proc cannot say when a process started, a live pid counts."""
    if pid < 1:
        return False  # 0 and negative pids name process groups, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    if started_by is None:
        return True
    started = _process_start(pid)
    return started is None or started <= started_by + 1.0  # /proc's boot time is in whole seconds


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from Linux's /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in clock ticks
