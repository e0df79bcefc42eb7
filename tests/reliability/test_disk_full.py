"""A full disk while tunesmith writes weights is one line: that the disk is full, what was being written, what is
intact, what to do. Nothing half-written is left, and what was there before keeps its bytes.

Each case fills a real small filesystem (a tmpfs, `small_filesystem`; skipped with the reason where it cannot be
mounted), so every library fails as it does on a full disk: torch's zip writer with no errno ("unexpected pos",
chained to "iostream error"), safetensors with "os error 28" in its own error type, numpy's tofile with "N
requested and M written", Python's writes with ENOSPC."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tunesmith.train.recipe as recipe
from tunesmith.atomic import staged_file, staged_folder
from tunesmith.errors import RunError
from tunesmith.run_dir import RunDir

MiB = 1 << 20
PAGE = 4096


def contents(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` (or the files themselves) with a hash of its bytes."""
    files = [file for folder in folders for file in ([folder] if folder.is_file() else folder.rglob("*"))]
    return {str(file): hashlib.sha256(file.read_bytes()).hexdigest() for file in files if file.is_file()}


def leftovers(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*-staging-*"))


@pytest.mark.parametrize(("write", "name", "free"), [
    # torch: "unexpected pos N vs M" from "basic_ios::clear: iostream error", no errno
    (lambda path: torch.save({"weights": torch.zeros(64 * 1024)}, path), "optimizer.pt", "0 bytes"),
    # safetensors: SafetensorError "... (os error 28)"; it finds out before writing a byte
    (lambda path: save_file({"weights": torch.zeros(64 * 1024)}, path), "model.safetensors", "252 KiB"),
    # numpy: OSError "262144 requested and 258048 written", errno unset
    (lambda path: np.zeros(64 * 1024, dtype=np.float32).tofile(path), "model.gguf", "0 bytes"),
    (lambda path: path.write_bytes(bytes(256 * 1024)), "tokenizer.json", "0 bytes"),  # Python: ENOSPC
], ids=["torch", "safetensors", "numpy", "python"])
def test_each_library_on_a_full_disk_is_one_line(small_filesystem, write, name, free):
    disk = small_filesystem(256 * 1024)
    target = disk.root / "run" / name
    target.parent.mkdir()
    target.write_bytes(b"the previous version")
    with pytest.raises(RunError) as raised, staged_file(target) as staging:
        write(staging)
    assert str(raised.value) == (f"the disk is full ({free} free): writing {target} failed and the part written was "
                                 f"removed; the previous {name} is intact (free some space and run the command again)")
    assert target.read_bytes() == b"the previous version" and list(target.parent.iterdir()) == [target]
    assert disk.free() == 256 * 1024 - PAGE  # no partial file anywhere: only the previous version takes space


def test_a_full_disk_while_writing_a_checkpoint(project, cli, small_filesystem, monkeypatch):
    disk = small_filesystem(4 * MiB, project / "runs")
    run = RunDir(project / "runs" / "exp")
    real_save = recipe.save_checkpoint
    before: dict[str, str] = {}
    left: list[int] = []

    def disk_fills_before_step_4(checkpoints, model, optimizer_state, scheduler, state, weights=None):
        if state.step == 4:  # other programs took the space: the weights fit, torch's optimizer.pt does not
            before.update(contents(run.checkpoints / "step-000002", run.best, run.config_path))
            disk.fill(leave=disk.room_for(checkpoints / "step-000002" / "weights") + PAGE)
            left.append(disk.free())
        return real_save(checkpoints, model, optimizer_state, scheduler, state, weights)

    monkeypatch.setattr(recipe, "save_checkpoint", disk_fills_before_step_4)
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp")
    assert code == 2 and error == (
        "tunesmith: error: the disk is full (0 bytes free): writing checkpoint runs/exp/checkpoints/step-000004 failed "
        "and the part written was removed; step-000002 and the checkpoints before it are intact (free some space, "
        "then run the same command with --resume to go on from step-000002)")
    assert sorted(path.name for path in run.checkpoints.iterdir()) == ["best", "step-000002"]
    assert contents(run.checkpoints / "step-000002", run.best, run.config_path) == before
    assert leftovers(run.root) == [] and disk.free() == left[0]  # the partial checkpoint's space is free again

    (disk.root / "ballast").unlink()  # what the line says to do works
    monkeypatch.setattr(recipe, "save_checkpoint", real_save)
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--resume")
    assert (code, error) == (0, "") and (run.checkpoints / "step-000004" / "trainer_state.json").is_file()


def test_a_full_disk_during_export(project, cli, small_filesystem):
    disk = small_filesystem(4 * MiB, project / "runs")
    run = RunDir(project / "runs" / "exp")
    assert cli("train", "config.yaml", "--set", "output.name=exp")[0] == 0
    assert cli("export", "runs/exp")[0] == 0
    before = contents(run.adapter, run.merged)
    # the adapter and merged/'s small files fit again; merged/'s weights (safetensors) do not
    left = disk.room_for(run.adapter) + 3 * PAGE
    disk.fill(leave=left)
    code, _, error = cli("export", "runs/exp")
    assert code == 2 and error == (
        "tunesmith: error: the disk is full (0 bytes free): writing runs/exp/adapter and runs/exp/merged failed and "
        "the part written was removed; the previous adapter and merged are intact (free some space and run the "
        "command again)")
    assert contents(run.adapter, run.merged) == before and leftovers(run.root) == [] and disk.free() == left


def test_a_full_disk_during_a_gguf_export(project, cli, small_filesystem):
    disk = small_filesystem(4 * MiB, project / "runs")
    run = RunDir(project / "runs" / "exp")
    assert cli("train", "config.yaml", "--set", "output.name=exp")[0] == 0
    assert cli("export", "runs/exp", "--format", "gguf")[0] == 0
    [gguf_file] = run.gguf.glob("*.gguf")
    before = contents(run.gguf, run.merged)
    # the header and metadata fit again; the tensors (numpy's tofile) do not
    header = gguf.GGUFReader(gguf_file).data_offset
    assert header + 2 * PAGE < gguf_file.stat().st_size
    left = -(-header // PAGE) * PAGE + PAGE
    disk.fill(leave=left)
    code, _, error = cli("export", "runs/exp", "--format", "gguf")
    assert code == 2 and error == (
        f"tunesmith: error: the disk is full (0 bytes free): writing runs/exp/gguf/{gguf_file.name} failed and the "
        f"part written was removed; the previous {gguf_file.name} is intact (free some space and run the command "
        "again)")
    assert contents(run.gguf, run.merged) == before and leftovers(run.root) == [] and disk.free() == left


def test_a_first_checkpoint_on_a_full_disk_leaves_no_folder(small_filesystem):
    disk = small_filesystem(64 * 1024)
    final = disk.root / "checkpoints" / "step-000002"
    disk.fill(leave=0)
    with pytest.raises(RunError) as raised, staged_folder(final) as staging:
        (staging / "weights.bin").write_bytes(b"x")
    assert str(raised.value) == (f"the disk is full (0 bytes free): writing {final} failed and the part written was "
                                 "removed; nothing else was changed (free some space and run the command again)")
    assert [path.name for path in final.parent.iterdir()] == []


def test_a_disk_out_of_file_entries_says_so(small_filesystem):
    disk = small_filesystem(MiB, inodes=4)  # the root, checkpoints/, the staging folder and one file
    final = disk.root / "checkpoints" / "step-000002"
    with pytest.raises(RunError) as raised, staged_folder(final) as staging:
        (staging / "optimizer.pt").write_bytes(b"x")
        (staging / "rng.pt").write_bytes(b"x")  # ENOSPC with a megabyte free
    assert str(raised.value) == (f"the disk is full (no file entries (inodes) left, 1020 KiB free): writing {final} "
                                 "failed and the part written was removed; nothing else was changed (free some space "
                                 "and run the command again)")
    assert list(final.parent.iterdir()) == []
