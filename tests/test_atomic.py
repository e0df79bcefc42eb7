import errno
import re
import resource
import shutil
import signal

import pytest

from tunesmith.atomic import recover_folder, replace_folder, staged_folder
from tunesmith.errors import RunError


def test_staged_folder_replaces_whole_folder(tmp_path):
    final = tmp_path / "best"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with staged_folder(final) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no staging or .old left behind


def test_failed_write_keeps_previous(tmp_path):
    final = tmp_path / "best"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(final) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert [p.name for p in final.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_crash_between_renames_is_recovered(tmp_path):
    final = tmp_path / "best"
    (tmp_path / "best.old").mkdir()  # what a crash after `final -> final.old` leaves
    (tmp_path / "best.old" / "weights").write_text("previous")
    recover_folder(final)
    assert (final / "weights").read_text() == "previous"
    new = tmp_path / "new"
    new.mkdir()
    replace_folder(new, final)
    assert not (final / "weights").exists() and not (tmp_path / "best.old").exists()


def test_result_has_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        final = tmp_path / "merged"
        with staged_folder(final):
            pass
    finally:
        os.umask(mask)
    assert final.stat().st_mode & 0o777 == 0o755  # not mkdtemp's private 0700: exports are meant to be shared


def test_stale_staging_folders_are_removed(tmp_path):
    from tunesmith.atomic import remove_stale_staging

    (tmp_path / ".step-000004-staging-abc").mkdir()
    (tmp_path / ".best-staging-xyz").mkdir()
    (tmp_path / "step-000002").mkdir()
    removed = remove_stale_staging(tmp_path)
    assert [p.name for p in removed] == [".best-staging-xyz", ".step-000004-staging-abc"]
    assert [p.name for p in tmp_path.iterdir()] == ["step-000002"]


def test_first_wins_keeps_an_entry_another_writer_published_and_walks_no_neighbours(tmp_path):
    import threading

    from tunesmith.atomic import staged_folder

    final = tmp_path / "cache" / "entry"
    barrier = threading.Barrier(4)
    errors = []

    def writer(mark: str) -> None:
        try:
            with staged_folder(final, first_wins=True) as staging:
                (staging / "data.txt").write_text(mark)
                barrier.wait()  # every writer publishes at the same moment
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(str(index),)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (final / "data.txt").read_text() in {"0", "1", "2", "3"}
    assert sorted(path.name for path in final.parent.iterdir()) == ["entry"]  # no staging or aside folder left


def _raised(write) -> BaseException:
    try:
        write()
    except Exception as error:  # noqa: BLE001 - the library's own error, whatever its type, is what is tested
        return error
    raise AssertionError("the write did not fail")


def _unwritable(path: str) -> str:
    """``path``, the device every write to fails with ENOSPC (only writers that open it in place: safetensors'
    save_file renames a temp file over its target), or the test is skipped."""
    import os
    import stat

    if not os.path.exists(path) or not stat.S_ISCHR(os.stat(path).st_mode):
        pytest.skip(f"no {path} device here to make writes fail")
    return path


def test_write_failure_reads_the_errno_python_gives(tmp_path):
    from tunesmith.atomic import write_failure

    full = _unwritable("/dev/full")
    error = _raised(lambda: open(full, "wb", buffering=0).write(b"weights"))  # noqa: SIM115 - fails on write
    line = str(write_failure(error, tmp_path / "merged", kept="the previous merged is intact"))
    assert re.fullmatch(r"the disk is full \([0-9.]+ [KMGT]iB free\): writing .*/merged failed and the part written "
                        r"was removed; the previous merged is intact \(free some space and run the command again\)",
                        line), line


def test_torch_says_disk_full_with_no_errno_so_the_free_space_decides(tmp_path, monkeypatch):
    """torch's zip writer on a full device: "unexpected pos N vs M", raised while handling "basic_ios::clear:
    iostream error". With room on the target's filesystem it is another disk fault, told as one line too."""
    import torch

    from tunesmith import atomic

    error = _raised(lambda: torch.save({"weights": torch.zeros(4096)}, _unwritable("/dev/full")))
    assert "unexpected pos" in str(error) and getattr(error, "errno", None) is None  # what torch really says
    line = str(atomic.write_failure(error, tmp_path / "optimizer.pt"))
    if shutil.disk_usage(tmp_path).free >= atomic.LOW_DISK_BYTES:
        assert re.fullmatch(r"writing .*/optimizer.pt failed \(\[enforce fail at inline_container.cc:\d+\] \. "
                            r"unexpected pos \d+ vs \d+\) \(check the disk \(e.g. `dmesg`\), then run the command "
                            r"again\)", line), line
    monkeypatch.setattr(atomic, "LOW_DISK_BYTES", shutil.disk_usage(tmp_path).free + 1)  # as if tmp_path were full
    assert str(atomic.write_failure(error, tmp_path / "optimizer.pt")).startswith("the disk is full (")


def test_numpy_short_write_with_room_left_is_not_called_a_full_disk(tmp_path):
    """A file-size limit cuts numpy's tofile short ("N requested and M written", no errno) on a disk with room."""
    import numpy as np

    from tunesmith.atomic import staged_file

    if shutil.disk_usage(tmp_path).free < (256 << 20):
        pytest.skip("needs a disk with room, so the short write is not a full disk")
    target = tmp_path / "model.gguf"
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel ends the process at the limit
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        with pytest.raises(RunError) as raised, staged_file(target) as staging:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
            try:
                np.zeros(1 << 19, dtype=np.float32).tofile(staging)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    finally:
        signal.signal(signal.SIGXFSZ, ignored)
    assert str(raised.value) == (f"writing {target} failed (524288 requested and 262144 written) and the part "
                                 "written was removed; nothing else was changed (check the disk (e.g. `dmesg`), then "
                                 "run the command again)")
    assert list(tmp_path.iterdir()) == []


def test_an_error_that_is_not_a_write_is_left_alone(tmp_path):
    from tunesmith.atomic import staged_folder, write_failure

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise KeyError("model.layers.0") from None  # a bug while a full disk was being handled elsewhere
    except KeyError as error:
        assert write_failure(error, tmp_path) is None
    with pytest.raises(ValueError, match="a bug"), staged_folder(tmp_path / "best"):
        raise ValueError("a bug")
    assert list(tmp_path.iterdir()) == []
