"""A tiny project (a config, a data file, the tiny random model) for the reliability scenarios, which run the CLI
in-process (the suite's `cli` fixture): each takes seconds. And a real small filesystem to fill
(`small_filesystem`), for the full-disk scenarios."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture()
def project(tiny_project):
    """A folder with `config.yaml` and `data.jsonl` (24 spam/ham rows) as the working directory (`tiny_project`)."""
    return tiny_project()


PAGE = 4096
"""tmpfs counts space in pages: a file of n bytes takes n rounded up to this."""


class SmallFilesystem:
    """A mounted tmpfs of a few pages: a real filesystem that really fills (ENOSPC and short writes from the
    kernel, as a full disk gives them), unmounted when the test ends."""

    def __init__(self, root: Path):
        self.root = root

    def free(self) -> int:
        return shutil.disk_usage(self.root).free

    def fill(self, leave: int) -> None:
        """Take all the free space but ``leave`` bytes (rounded up to a page) with a ballast file, as other programs
        would have."""
        with open(self.root / "ballast", "ab") as ballast:
            ballast.write(b"\0" * (self.free() - -(-leave // PAGE) * PAGE))
        assert self.free() == -(-leave // PAGE) * PAGE

    @staticmethod
    def room_for(*paths: Path) -> int:
        """The bytes the files at ``paths`` (files, or folders walked) take on a tmpfs: what writing them again
        needs."""
        files = [file for path in paths for file in ([path] if path.is_file() else path.rglob("*")) if file.is_file()]
        return sum(-(-file.stat().st_size // PAGE) * PAGE for file in files)


@pytest.fixture()
def small_filesystem(tmp_path):
    """``small_filesystem(size, at, inodes)`` mounts a tmpfs of ``size`` bytes (and at most ``inodes`` files and
    folders, when given) at ``at`` (created; default a folder in tmp_path) and returns a `SmallFilesystem`.
    Mounting needs root (or CAP_SYS_ADMIN): where it is refused, the test is skipped with the reason."""
    mounted: list[Path] = []

    def mount(size: int, at: Path | None = None, inodes: int | None = None) -> SmallFilesystem:
        root = Path(at or tmp_path / f"small-fs-{len(mounted)}")
        root.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("no mount command here, so no small filesystem can be made to fill")
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill needs root; this test runs as a normal user")
        options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(root)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"mounting a small tmpfs was refused here: {done.stderr.strip() or done.returncode}")
        mounted.append(root)
        return SmallFilesystem(root)

    yield mount
    for root in reversed(mounted):
        # lazy (-l): a file a failed write left open elsewhere would make a plain unmount fail with "busy"
        subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)
