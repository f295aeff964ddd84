"""Save/load: bit-identical round trip, atomic writes, refusals that leave the memory intact."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from core_scenes import intrinsics, look_at, raycast, surface_latents
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import MemoryFileError
from mirage_ros.core.memory import LatentSpatialMemory, RenderResult

ROOM = ((-3.0, -2.0, 0.0), (3.0, 2.0, 2.5))
H, W = 24, 32
K = intrinsics(H, W, 24.0)
VIEW = look_at((-1.0, 0.5, 1.0), (2.0, 0.0, 0.5))


def make(c: int = 4, **kw: object) -> LatentSpatialMemory:
    mem = LatentSpatialMemory(
        MemoryConfig(device="cpu", latent_channels=c, **kw), codec_id="tiny-v1"
    )  # type: ignore[arg-type]
    for i in range(4):
        T = look_at((-1.0, -0.5 + 0.3 * i, 1.2), (2.0, 0.2 * i, 0.6))
        d = raycast(K, T, H, W, [], ROOM)
        mem.integrate(surface_latents(d, K, T, c), d, K, T, 10**9 * i)
    return mem


def same(a: RenderResult, b: RenderResult) -> bool:
    return (
        torch.equal(a.latents, b.latents)
        and torch.equal(a.coverage, b.coverage)
        and torch.equal(a.depth_m.nan_to_num(-1), b.depth_m.nan_to_num(-1))
        and torch.equal(a.weight, b.weight)
        and torch.equal(a.age_s.nan_to_num(-1), b.age_s.nan_to_num(-1))
    )


def test_save_load_render_is_bit_identical(tmp_path: Path) -> None:
    mem = make()
    path = tmp_path / "m.safetensors"
    mem.save(path)
    other = LatentSpatialMemory(MemoryConfig(device="cpu", latent_channels=4, voxel_size_m=0.2))
    other.load(path)
    assert other.config.voxel_size_m == mem.config.voxel_size_m and other.codec_id == "tiny-v1"
    assert same(mem.render(K, VIEW, H, W), other.render(K, VIEW, H, W))
    assert other.num_voxels == mem.num_voxels and other.frames_integrated == 4
    loaded = LatentSpatialMemory.from_file(path, device="cpu")
    assert same(mem.render(K, VIEW, H, W), loaded.render(K, VIEW, H, W))


def test_loaded_memory_keeps_integrating_like_the_original(tmp_path: Path) -> None:
    mem = make()
    mem.save(tmp_path / "m.safetensors")
    loaded = LatentSpatialMemory.from_file(tmp_path / "m.safetensors", device="cpu")
    d = raycast(K, VIEW, H, W, [], ROOM)
    for m in (mem, loaded):
        m.integrate(surface_latents(d, K, VIEW, 4), d, K, VIEW, 10**10)
    assert same(mem.render(K, VIEW, H, W), loaded.render(K, VIEW, H, W))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    mem = make()
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old content")
    mem.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    with pytest.raises(MemoryFileError):
        mem.save(tmp_path / "missing_dir" / "m.safetensors")


def _refused(tmp_path: Path, data: bytes, match: str) -> None:
    target = make()
    before = target.render(K, VIEW, H, W)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data)
    with pytest.raises(MemoryFileError, match=match):
        target.load(bad)
    assert same(before, target.render(K, VIEW, H, W)), "a refused load must not touch the memory"
    assert target.codec_id == "tiny-v1"


def _rewrite_header(data: bytes, edit: dict[str, object]) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    st = json.loads(data[8 : 8 + n])
    header = json.loads(st["__metadata__"]["mirage"])
    header.update(edit)
    st["__metadata__"]["mirage"] = json.dumps(header)
    raw = json.dumps(st).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


@pytest.fixture
def good(tmp_path: Path) -> bytes:
    path = tmp_path / "good.safetensors"
    make().save(path)
    return path.read_bytes()


def test_refuses_other_format_version(tmp_path: Path, good: bytes) -> None:
    _refused(tmp_path, _rewrite_header(good, {"format_version": 99}), "version")


def _legacy_file(mem: LatentSpatialMemory, path: Path, version: int) -> Path:
    """``mem`` (one level) written as format ``version`` 1 or 2 would have: 21 bits per axis,
    no near-level fields (and in version 1 no normals)."""
    from mirage_ros.core.persistence import _checksum
    from mirage_ros.core.voxel_hash import unpack_keys
    from safetensors.torch import load, save

    current = path.with_suffix(".v3")
    mem.save(current)
    data = current.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["mirage"])
    tensors = load(data)
    o = unpack_keys(tensors["keys"]) + (1 << 20)
    tensors["keys"] = (o[:, 0] << 42) | (o[:, 1] << 21) | o[:, 2]
    if version == 1:
        del tensors["normals"]
    for key in ("near_voxel_size_m", "near_depth_m"):
        del header[key], header["config"][key]
    header.update(format_version=version, checksum_sha256=_checksum(tensors, version=version))
    path.write_bytes(save(tensors, metadata={"mirage": json.dumps(header)}))
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_reads_files_of_older_versions(tmp_path: Path, version: int) -> None:
    """Files written before the near level (version 2) or before normals were stored (1) load
    as one level, their keys repacked; version 1 with zero normals (never culled)."""
    mem = make(near_voxel_size_m=0.0)
    loaded = LatentSpatialMemory.from_file(
        _legacy_file(mem, tmp_path / "old.safetensors", version), device="cpu"
    )
    assert loaded.num_voxels == mem.num_voxels and not loaded.config.has_near_level
    assert torch.equal(loaded.keys, mem.keys[mem._live_slots()].sort().values)  # today's layout
    if version == 1:
        assert not bool(loaded.normals.any())
        mem.normals.zero_()
    assert same(mem.render(K, VIEW, H, W), loaded.render(K, VIEW, H, W))
    path = tmp_path / "again.safetensors"
    loaded.save(path)  # and it is written back in the current version
    again = LatentSpatialMemory.from_file(path, device="cpu")
    assert same(again.render(K, VIEW, H, W), loaded.render(K, VIEW, H, W))
    into = make()  # a memory with a near level keeps it: the file's keys are all level 0
    into.load(path)
    assert into.config.has_near_level and into.num_voxels == mem.num_voxels
    assert same(into.render(K, VIEW, H, W), loaded.render(K, VIEW, H, W))


def test_round_trip_keeps_both_levels(tmp_path: Path) -> None:
    from mirage_ros.core.voxel_hash import key_levels

    mem = make(voxel_size_m=0.1, near_voxel_size_m=0.05, near_depth_m=2.0)
    levels = key_levels(mem.keys[mem._live_slots()])
    assert bool((levels == 0).any()) and bool((levels == 1).any())
    path = tmp_path / "m.safetensors"
    mem.save(path)
    other = make()  # default levels, replaced by the file's
    other.load(path)
    assert (other.config.near_voxel_size_m, other.config.near_depth_m) == (0.05, 2.0)
    assert same(mem.render(K, VIEW, H, W), other.render(K, VIEW, H, W))
    one_level = make(near_voxel_size_m=0.0)  # the file's level-1 keys need its near size
    one_level.load(path)
    assert one_level.config.near_voxel_size_m == 0.05
    assert same(mem.render(K, VIEW, H, W), one_level.render(K, VIEW, H, W))


def test_refuses_other_latent_size(tmp_path: Path) -> None:
    path = tmp_path / "c8.safetensors"
    make(c=8).save(path)
    _refused(tmp_path, path.read_bytes(), "latent channels|shape")


def test_refuses_bit_flip(tmp_path: Path, good: bytes) -> None:
    flipped = bytearray(good)
    flipped[-5] ^= 0x10
    _refused(tmp_path, bytes(flipped), "checksum|non-finite|weight|keys")


def test_refuses_truncated_file(tmp_path: Path, good: bytes) -> None:
    _refused(tmp_path, good[: len(good) - 7], "truncated|span|corrupt")


def test_refuses_garbage_and_oversized_header(tmp_path: Path, good: bytes) -> None:
    _refused(tmp_path, b"\x00" * 4, "too short")
    _refused(tmp_path, struct.pack("<Q", 1 << 40) + b"{}", "header length")
    _refused(tmp_path, b"PK\x03\x04 this is a zip, not a memory" * 3, "header length|unreadable")


def test_refuses_header_that_lies_about_the_voxel_count(tmp_path: Path, good: bytes) -> None:
    _refused(tmp_path, _rewrite_header(good, {"num_voxels": 10**12}), "shape")


def test_refuses_file_bigger_than_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    make().save(path)
    small = LatentSpatialMemory(MemoryConfig(device="cpu", latent_channels=4, max_memory_mb=0.01))
    with pytest.raises(MemoryFileError, match=r"exceeds|voxels"):
        small.load(path)
    assert small.num_voxels == 0


def test_file_from_another_codec_is_refused_and_memory_kept(tmp_path) -> None:
    import pytest
    import torch
    from mirage_ros.core.config import MemoryConfig
    from mirage_ros.core.errors import MemoryFileError
    from mirage_ros.core.memory import LatentSpatialMemory

    K = torch.tensor([[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]])
    other = LatentSpatialMemory(MemoryConfig(latent_channels=4, device="cpu"), codec_id="codec-a")
    other.integrate(torch.randn(4, 24, 32), torch.full((24, 32), 2.0), K, torch.eye(4), 1)
    other.save(tmp_path / "a.safetensors")
    mine = LatentSpatialMemory(MemoryConfig(latent_channels=4, device="cpu"), codec_id="codec-b")
    with pytest.raises(MemoryFileError, match="codec codec-a"):
        mine.load(tmp_path / "a.safetensors", expected_codec_id="codec-b")
    assert mine.num_voxels == 0 and mine.codec_id == "codec-b"
    mine.load(tmp_path / "a.safetensors", expected_codec_id="codec-a")
    assert mine.num_voxels == other.num_voxels
