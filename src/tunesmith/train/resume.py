"""What a resume must find as the run left it, besides its settings (`tunesmith.config.changes`): the global batch
(the data cursor counts batches of that size) and the contents of the data files (a path that now holds other rows
would continue the run on data its checkpoints never saw, and its record would not say so).

`check_resume` runs before a resume writes anything (`tunesmith.pipeline.resume_config` calls it before it records
the applied changes; training calls it again before it loads the model), so a refused resume leaves the run folder
as it was; the second check reads no data file the first one read, unless it changed in between
(`data_fingerprint`). It reads only the newest checkpoint's `trainer_state.json`: every checkpoint of a run has the
same global batch and data, since a resume that changes either is refused.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from tunesmith import distributed
from tunesmith.config.schema import DataConfig, RunConfig
from tunesmith.data.cache import hash_file
from tunesmith.data.readers import data_file_paths
from tunesmith.errors import RunError
from tunesmith.json_files import read_json
from tunesmith.run_dir import RunDir
from tunesmith.text import count_of
from tunesmith.train.checkpoint import STATE_FILE, checkpoints_newest_first
from tunesmith.train.state import TrainState


def global_batch_of(config: RunConfig) -> int:
    """Rows (or packs) per optimizer step, all processes together."""
    tc = config.train
    return tc.batch_size * distributed.world_size() * tc.grad_accumulation


def check_global_batch(folder: Path, state: TrainState, config: RunConfig) -> None:
    """The global batch must be the checkpoint's (the number of processes may differ): else the cursor would not
    continue the same sequence of steps."""
    if state.global_batch is None or state.global_batch == global_batch_of(config):
        return
    tc = config.train
    raise RunError(
        f"{folder} was trained with a global batch of {state.global_batch} rows per step; now it would be "
        f"{global_batch_of(config)} (batch_size {tc.batch_size} x {distributed.world_size()} processes x "
        f"grad_accumulation {tc.grad_accumulation}), which would not continue the same training",
        "change train.batch_size or train.grad_accumulation (--set) so that their product with the number of "
        f"processes is {state.global_batch}")


def data_fingerprint(data: DataConfig) -> dict[str, str]:
    """``{file: sha256 of its path and bytes}`` for every file the data settings read (`data_file_paths`), each
    read in chunks (`tunesmith.data.cache.hash_file`, the tokenized cache's key hashes them the same way). A file
    this process hashed before and that has not changed since is not read again (`_file_digest`)."""
    return {str(path): _file_digest(path) for path in data_file_paths(data)}


_DIGESTS: dict[tuple, str] = {}
"""This process's file digests by the file's path and stat (device, inode, size, modification and change times).
A resume checks the data files before it writes anything (`tunesmith.pipeline.resume_config`) and training checks
them again before it loads the model: without this, a resume would read every data file twice."""
RACY_SECONDS = 2.0
"""A file modified this recently can be modified again within its file system's timestamp granularity (up to 2 s)
without its stat changing (git's "racy" files): its digest is not kept, so it is read again every time."""


def _file_digest(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        stat = None  # hash_file hashes the path alone; reading the data says what is wrong
    key = None if stat is None else (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
                                     stat.st_ctime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    digest = hashlib.sha256()
    hash_file(digest, path)
    if key is not None and time.time() - max(stat.st_mtime, stat.st_ctime) > RACY_SECONDS:
        _DIGESTS[key] = digest.hexdigest()
    return digest.hexdigest()


def check_same_data(run: RunDir, recorded: dict[str, str], now: dict[str, str]) -> None:
    """A `RunError` naming the first data file whose contents differ from those the run trained on (or that
    appeared or went since)."""
    changed = sorted(path for path in recorded.keys() | now.keys() if recorded.get(path) != now.get(path))
    if not changed:
        return
    first = changed[0]
    if first not in now:
        what = f"{first}, a data file of the run, is no longer among its data files"
    elif first not in recorded:
        what = f"{first} is a data file the run did not train on"
    elif not Path(first).exists():
        what = f"{first}, a data file of the run, is missing"
    else:
        what = f"{first} changed since {run.root} started training (its contents differ from those it trained on)"
    more = f" (and {count_of(len(changed) - 1, 'other data file')})" if len(changed) > 1 else ""
    raise RunError(f"cannot resume: {what}{more}",
                   "put the files back as they were, or train on the new data in a new run (without --resume)")


def newest_state(run: RunDir) -> tuple[Path, TrainState] | None:
    """The newest checkpoint whose `trainer_state.json` reads, and that state; None when there is none (training
    then says what is wrong: `tunesmith.train.checkpoint.newest_intact_checkpoint`)."""
    for folder in checkpoints_newest_first(run.checkpoints):
        try:
            return folder, TrainState.from_json(read_json(folder / STATE_FILE) or {})
        except (RunError, OSError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            continue  # a damaged state: the one before it
    return None


def check_resume(run: RunDir, config: RunConfig, data_files: dict[str, str] | None = None) -> None:
    """Refuse (a `RunError`) a resume of ``run`` with ``config`` whose global batch or data files differ from its
    newest checkpoint's. ``data_files``: `data_fingerprint` of the run's data, when the caller has it."""
    found = newest_state(run)
    if found is None:
        return
    folder, state = found
    check_global_batch(folder, state, config)
    if state.data_files is not None:
        check_same_data(run, state.data_files, data_fingerprint(config.data) if data_files is None else data_files)
