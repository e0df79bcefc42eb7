import pytest

from tunesmith.atomic import recover_folder, replace_folder, staged_folder


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
