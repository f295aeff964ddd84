"""Save/load of a LatentSpatialMemory: safetensors tensors + a JSON header, atomic, checked.

File = safetensors (8-byte little-endian header length, JSON header, raw tensor bytes). The
project header lives in the safetensors metadata under ``"mirage"`` (JSON): format name and
version, voxel size, latent channels and dtype, codec id, the config, counters and a SHA-256
of the tensor bytes. Writing goes to a temp file in the target directory, is fsynced and then
``os.replace``d over the target. Loading never executes code from the file (no pickle): the
header is read and checked first (size, version, shapes, offsets) before any big allocation,
then the tensors are parsed by safetensors, the checksum and the values are verified, and only
then is the memory in use replaced -- on any error it is left untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ConfigError, MemoryFileError
from mirage_ros.core.voxel_hash import key_levels, repack_legacy_keys

if TYPE_CHECKING:
    from mirage_ros.core.memory import LatentSpatialMemory

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "load_memory_into",
    "memory_from_file",
    "memory_from_tensors",
    "read_memory_file",
    "save_memory",
]

FORMAT_NAME = "mirage_memory"
#: 2 added the voxels' fused surface normals; version 1 files load with none (never culled).
#: 3 added the near level (finer voxels for cells seen near the camera): keys carry a level and
#: 20 bits per axis. Files of versions 1-2 load as one level, their keys repacked
FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_MAX_HEADER_BYTES = 1 << 20
_TENSOR_ORDER = ("keys", "stamps", "weights", "positions", "normals", "latents")
_TENSOR_ORDER_V1 = ("keys", "stamps", "weights", "positions", "latents")
_ST_DTYPES = {"F16": torch.float16, "F32": torch.float32, "I64": torch.int64}


def _tensor_names(version: int) -> tuple[str, ...]:
    return _TENSOR_ORDER_V1 if version == 1 else _TENSOR_ORDER


def _checksum(tensors: dict[str, torch.Tensor], version: int = FORMAT_VERSION) -> str:
    h = hashlib.sha256()
    for name in _tensor_names(version):
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_memory(memory: LatentSpatialMemory, path: Path) -> None:
    """Write ``memory`` to ``path`` atomically (voxels in key order, so the file is canonical)."""
    live = memory._live_slots()
    order = torch.argsort(memory.keys[live], stable=True)
    s = live[order]
    tensors = {
        "keys": memory.keys[s].cpu().contiguous(),
        "stamps": memory.stamps[s].cpu().contiguous(),
        "weights": memory.weights[s].cpu().contiguous(),
        "positions": memory.positions[s].cpu().contiguous(),
        "normals": memory.normals[s].cpu().contiguous(),
        "latents": memory.latents[s].cpu().contiguous(),
    }
    cam = memory.last_camera_position
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "voxel_size_m": memory.config.voxel_size_m,
        "near_voxel_size_m": memory.config.near_voxel_size_m,
        "near_depth_m": memory.config.near_depth_m,
        "latent_channels": memory.config.latent_channels,
        "latent_dtype": memory.config.latent_dtype,
        "codec_id": memory.codec_id,
        "config": memory.config.to_dict(),
        "num_voxels": int(s.numel()),
        "frames_integrated": memory.frames_integrated,
        "newest_stamp_ns": memory.newest_stamp_ns,
        "last_camera_position": None if cam is None else [float(x) for x in cam.cpu()],
        "evicted_total": memory.evicted_total,
        "carved_total": memory.carved_total,
        "checksum_sha256": _checksum(tensors),
    }
    data = st_save(tensors, metadata={"mirage": json.dumps(header, sort_keys=True)})
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise MemoryFileError(f"cannot save memory: directory {directory} does not exist")
    tmp_name = ""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = ""
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise MemoryFileError(f"cannot save memory to {path}: {exc}") from exc
    finally:
        if tmp_name and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise MemoryFileError(f"refusing memory file {path}: {what}")


def read_memory_file(
    path: Path, max_file_bytes: int | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and fully verify a memory file -> (header, CPU tensors). Raises MemoryFileError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MemoryFileError(f"cannot read memory file {path}: {exc}") from exc
    _expect(size >= 8, path, "too short to be a safetensors file")
    if max_file_bytes is not None:
        _expect(size <= max_file_bytes, path, f"{size} bytes exceeds the limit {max_file_bytes}")
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            _expect(n <= min(_MAX_HEADER_BYTES, size - 8), path, f"bad header length {n}")
            raw_header = f.read(n)
            st_header = json.loads(raw_header)
            _expect(isinstance(st_header, dict), path, "header is not a JSON object")
            meta = st_header.get("__metadata__")
            _expect(isinstance(meta, dict) and "mirage" in meta, path, "no mirage header")
            header = json.loads(meta["mirage"])
            _expect(isinstance(header, dict), path, "mirage header is not a JSON object")
            _check_header(header, st_header, size - 8 - n, path)
            f.seek(0)
            blob = f.read()
    except (OSError, ValueError, UnicodeDecodeError, struct.error) as exc:
        raise MemoryFileError(f"refusing memory file {path}: unreadable ({exc})") from exc
    _expect(len(blob) == size, path, "file changed while reading")
    try:
        tensors = st_load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise MemoryFileError(f"refusing memory file {path}: corrupt tensors ({exc})") from exc
    version = int(header["format_version"])
    _expect(set(tensors) == set(_tensor_names(version)), path, "unexpected tensor names")
    _expect(
        _checksum(tensors, version) == header["checksum_sha256"],
        path,
        "checksum mismatch (corrupt)",
    )
    if version == 1:  # no normals were stored: zero ones are never culled
        tensors["normals"] = torch.zeros(tensors["positions"].shape, dtype=torch.float16)
    keys, w = tensors["keys"], tensors["weights"]
    _expect(bool((keys >= 0).all()), path, "negative voxel keys")
    if version < 3:  # one level, 21 bits per axis: today's layout keeps the order
        repacked = repack_legacy_keys(keys)
        _expect(repacked is not None, path, "voxel coordinates beyond +-2**19 voxels")
        assert repacked is not None
        tensors["keys"] = keys = repacked
        header["near_voxel_size_m"] = 0.0
        header["near_depth_m"] = 0.0
    _expect(bool((key_levels(keys) <= 1).all()), path, "unknown voxel level in a key")
    _expect(bool((keys[1:] > keys[:-1]).all()), path, "voxel keys not strictly increasing")
    _expect(bool((torch.isfinite(w) & (w > 0)).all()), path, "non-positive or non-finite weight")
    for name in ("positions", "normals", "latents"):
        _expect(bool(torch.isfinite(tensors[name]).all()), path, f"non-finite {name}")
    return header, tensors


def _check_header(
    header: dict[str, Any], st_header: dict[str, Any], data_len: int, path: Path
) -> None:
    _expect(header.get("format") == FORMAT_NAME, path, f"not a {FORMAT_NAME} file")
    ver = header.get("format_version")
    _expect(
        ver in _READABLE_VERSIONS,
        path,
        f"format version {ver!r}, this build reads {', '.join(map(str, _READABLE_VERSIONS))}",
    )
    required = ["voxel_size_m", "latent_channels", "num_voxels", "checksum_sha256", "config"]
    if ver == 3:
        required += ["near_voxel_size_m", "near_depth_m"]
    for key in required:
        _expect(key in header, path, f"header lacks {key!r}")
    N, C = header["num_voxels"], header["latent_channels"]
    _expect(isinstance(N, int) and N >= 0, path, f"bad num_voxels {N!r}")
    _expect(isinstance(C, int) and C >= 1, path, f"bad latent_channels {C!r}")
    lat_dt = {"float16": "F16", "float32": "F32"}.get(str(header.get("latent_dtype")), "")
    _expect(lat_dt != "", path, f"bad latent_dtype {header.get('latent_dtype')!r}")
    expected = {
        "keys": ("I64", [N]),
        "stamps": ("I64", [N]),
        "weights": ("F32", [N]),
        "positions": ("F32", [N, 3]),
        "normals": ("F16", [N, 3]),
        "latents": (lat_dt, [N, C]),
    }
    expected = {name: expected[name] for name in _tensor_names(header["format_version"])}
    names = {k for k in st_header if k != "__metadata__"}
    _expect(names == set(expected), path, f"tensors {sorted(names)}, expected {sorted(expected)}")
    spans = []
    for name, (dt, shape) in expected.items():
        entry = st_header[name]
        _expect(isinstance(entry, dict), path, f"bad entry for {name}")
        _expect(entry.get("dtype") == dt, path, f"{name} dtype {entry.get('dtype')}, want {dt}")
        _expect(
            entry.get("shape") == shape, path, f"{name} shape {entry.get('shape')}, want {shape}"
        )
        off = entry.get("data_offsets")
        _expect(isinstance(off, list) and len(off) == 2, path, f"bad offsets for {name}")
        numel = 1
        for d in shape:
            numel *= d
        itemsize = _ST_DTYPES[dt].itemsize
        _expect(off[1] - off[0] == numel * itemsize, path, f"{name} byte span does not match shape")
        spans.append((off[0], off[1]))
    spans.sort()
    _expect(spans[-1][1] == data_len if spans else data_len == 0, path, "truncated or padded data")


def memory_from_tensors(
    config: MemoryConfig, codec_id: str, header: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> LatentSpatialMemory:
    """A memory holding exactly ``tensors`` (keys sorted, unique; as :func:`read_memory_file`
    returns them). ``header`` gives num_voxels and, optionally, the counters."""
    from mirage_ros.core.memory import LatentSpatialMemory

    mem = LatentSpatialMemory(config, codec_id=codec_id)
    N = int(header["num_voxels"])
    if mem.max_voxels < N:
        raise MemoryFileError(
            f"memory file holds {N} voxels, more than max_memory_mb={config.max_memory_mb} allows "
            f"({mem.max_voxels})"
        )
    mem._alloc(N)
    d = mem.device
    mem.keys[:] = tensors["keys"].to(d)
    mem.stamps[:] = tensors["stamps"].to(d)
    mem.weights[:] = tensors["weights"].to(d)
    mem.positions[:] = tensors["positions"].to(d)
    mem.normals[:] = tensors["normals"].to(d)
    mem.latents[:] = tensors["latents"].to(device=d, dtype=mem.latents.dtype)
    mem.n_used = N
    mem._n_live = N
    mem.index.rebuild(mem.keys)
    mem.frames_integrated = int(header.get("frames_integrated", 0))
    stamp = header.get("newest_stamp_ns")
    mem.newest_stamp_ns = None if stamp is None else int(stamp)
    cam = header.get("last_camera_position")
    mem.last_camera_position = (
        None if cam is None else torch.tensor(cam, dtype=torch.float32, device=d)
    )
    mem.evicted_total = int(header.get("evicted_total", 0))
    mem.carved_total = int(header.get("carved_total", 0))
    return mem


def _file_limit(config: MemoryConfig) -> int:
    return 2 * config.max_memory_bytes + _MAX_HEADER_BYTES + 4096


def load_memory_into(
    memory: LatentSpatialMemory, path: Path, expected_codec_id: str | None = None
) -> None:
    """Replace ``memory``'s content by the file's; all-or-nothing.

    Voxel size, latent dtype and codec id come from the file, and so does the near level when
    the file has one (its level-1 keys mean voxels of its near size); a file of one level keeps
    ``memory``'s near level for what is integrated next. The latent channel count must match
    ``memory.config``; budget, device and the other settings stay those of ``memory``.
    """
    header, tensors = read_memory_file(path, max_file_bytes=_file_limit(memory.config))
    file_codec = str(header.get("codec_id", "none"))
    if expected_codec_id is not None and file_codec != expected_codec_id:
        raise MemoryFileError(
            f"refusing memory file {path}: written with codec {file_codec}, this node runs "
            f"{expected_codec_id} (load it with the same weights)"
        )
    if header["latent_channels"] != memory.config.latent_channels:
        raise MemoryFileError(
            f"refusing memory file {path}: {header['latent_channels']} latent channels, "
            f"this memory holds {memory.config.latent_channels}"
        )
    try:
        config = dataclasses.replace(
            memory.config, voxel_size_m=header["voxel_size_m"], latent_dtype=header["latent_dtype"]
        )
        file_levels = dataclasses.replace(
            config,
            near_voxel_size_m=header["near_voxel_size_m"],
            near_depth_m=header["near_depth_m"],
        )
        if file_levels.has_near_level:  # its level-1 keys mean voxels of its near size
            config = file_levels
    except ConfigError as exc:
        raise MemoryFileError(f"refusing memory file {path}: bad header values ({exc})") from exc
    fresh = memory_from_tensors(config, str(header.get("codec_id", "none")), header, tensors)
    memory.__dict__.update(fresh.__dict__)


def memory_from_file(
    path: Path, device: str = "auto", max_memory_mb: float | None = None
) -> LatentSpatialMemory:
    """A new memory from a file, configured by the file's header (device/budget overridable)."""
    header, tensors = read_memory_file(path)
    try:
        cfg = dict(header["config"])
        cfg["device"] = device
        if max_memory_mb is not None:
            cfg["max_memory_mb"] = max_memory_mb
        for key in ("voxel_size_m", "near_voxel_size_m", "near_depth_m"):
            cfg[key] = header[key]  # the keys' meaning
        cfg["latent_channels"] = header["latent_channels"]
        cfg["latent_dtype"] = header["latent_dtype"]
        config = MemoryConfig.from_dict(cfg)
    except (ConfigError, TypeError) as exc:
        raise MemoryFileError(f"refusing memory file {path}: bad config in header ({exc})") from exc
    return memory_from_tensors(config, str(header.get("codec_id", "none")), header, tensors)
