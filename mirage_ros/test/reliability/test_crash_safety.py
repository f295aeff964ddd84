"""Crash safety of memory files: kill -9 during a save, full disk, read-only targets."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import MemoryFileError
from mirage_ros.core.memory import LatentSpatialMemory

CHILD = textwrap.dedent(
    """
    import sys, torch
    from mirage_ros.core.config import MemoryConfig
    from mirage_ros.core.memory import LatentSpatialMemory

    path = sys.argv[1]
    torch.manual_seed(0)
    mem = LatentSpatialMemory(MemoryConfig(latent_channels=8, device="cpu", voxel_size_m=0.02))
    K = torch.tensor([[100.0, 0, 63.5], [0, 100.0, 47.5], [0, 0, 1]])

    def frame(i):
        T = torch.eye(4)
        T[0, 3] = 0.05 * i
        depth = 1.0 + torch.rand(96, 128)
        mem.integrate(torch.randn(8, 96, 128), depth, K, T, 1_000_000_000 + i)

    for i in range(4):
        frame(i)
    mem.save(path)
    print("A", flush=True)
    i = 4
    while True:  # keep re-saving a growing memory until killed
        frame(i)
        print("S", i, flush=True)
        mem.save(path)
        print("B", i, flush=True)
        i += 1
    """
)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.05, 0.2, 0.5])
def test_kill_9_during_save_leaves_a_complete_loadable_file(tmp_path: Path, delay_s: float) -> None:
    path = tmp_path / "mem.safetensors"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "A"
    first = hashlib.sha256(path.read_bytes()).hexdigest()
    time.sleep(delay_s)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # "S i" is printed before save i starts, "B i" after it completed
    rest = child.stdout.read()
    assert child.returncode == -signal.SIGKILL
    after = _sha(path)
    loaded = LatentSpatialMemory(MemoryConfig(latent_channels=8, device="cpu"))
    loaded.load(path)  # a complete file: loads and passes its checksum
    assert loaded.num_voxels > 0
    if "S" not in rest:
        assert after == first  # no newer save started: the first file, bit-identical
    # (a save killed between its rename and its "B" line leaves the new file: also complete)


def _small_memory() -> LatentSpatialMemory:
    mem = LatentSpatialMemory(MemoryConfig(latent_channels=4, device="cpu", voxel_size_m=0.05))
    K = torch.tensor([[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]])
    mem.integrate(torch.randn(4, 24, 32), torch.full((24, 32), 2.0), K, torch.eye(4), 1)
    return mem


def test_full_disk_fails_with_a_message_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mem.safetensors"
    mem = _small_memory()
    mem.save(path)
    before = path.read_bytes()

    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(MemoryFileError, match="No space left"):
        mem.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mem.safetensors"]  # no partial file


def test_read_only_target_fails_with_a_message(tmp_path: Path) -> None:
    mem = _small_memory()
    with pytest.raises(MemoryFileError):
        mem.save(Path("/proc/mirage_memory.safetensors"))
    with pytest.raises(MemoryFileError, match="does not exist"):
        mem.save(tmp_path / "missing_dir" / "m.safetensors")
