"""A real small filesystem that can be filled up: a tmpfs mounted for one test.

Fixtures
    full_disk  function  FullDisk: ``.mount`` (the tmpfs), ``.fill()``, ``.free()``

``FullDisk.fill()`` writes a filler file until the kernel says ENOSPC;
``free()`` deletes it. The mount goes away at teardown (lazily when something
still holds a file on it).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_CHUNK = b"\0" * 4096


@dataclass
class FullDisk:
    mount: Path

    @property
    def filler(self) -> Path:
        return self.mount / "filler"

    def fill(self) -> None:
        """Take every free block (the filesystem answers ENOSPC afterwards)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    os.write(fd, _CHUNK)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        finally:
            os.close(fd)
        assert self.free_bytes() == 0

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        stat = os.statvfs(self.mount)
        return stat.f_bavail * stat.f_frsize


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    """A 16 MiB tmpfs at ``tmp_path/disk`` (this machine's tests run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield FullDisk(mount)
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)
