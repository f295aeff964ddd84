"""Configuration of the latent spatial memory (frozen, validated on construction).

Every field carries ``metadata={"description": ..., "range": (lo, hi)}`` so the ROS node can
declare parameters (with descriptions and ranges) straight from this dataclass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from mirage_ros.core.errors import ConfigError

__all__ = ["EVICTION_POLICIES", "LATENT_DTYPES", "MemoryConfig", "resolve_device"]

#: accepted values of :attr:`MemoryConfig.eviction`
EVICTION_POLICIES: tuple[str, ...] = ("lru", "farthest")
#: accepted values of :attr:`MemoryConfig.latent_dtype` -> torch dtype
LATENT_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "float32": torch.float32}


def resolve_device(name: str) -> torch.device:
    """Turn a device setting into a :class:`torch.device`.

    ``"auto"`` is CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` are taken
    literally. A CUDA device that is not present raises :class:`ConfigError`.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"device must be a non-empty string, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown device {name!r}: {exc}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r}: only 'auto', 'cpu' and 'cuda[:N]' are supported")
    return device


def _f(default: Any, description: str, lo: float | None = None, hi: float | None = None) -> Any:
    meta: dict[str, Any] = {"description": description}
    if lo is not None or hi is not None:
        meta["range"] = (lo, hi)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MemoryConfig:
    """Settings of :class:`~mirage_ros.core.memory.LatentSpatialMemory` (immutable)."""

    #: edge length of one voxel of the hash, metres
    voxel_size_m: float = _f(0.05, "edge length of one memory voxel (m)", 0.001, 10.0)
    #: edge of the finer voxels that hold the cells observed nearer than ``near_depth_m``: near
    #: the camera a latent cell covers far less than a voxel, and one latent per voxel would
    #: average its detail away. Used only when smaller than ``voxel_size_m`` (0 = off)
    near_voxel_size_m: float = _f(
        0.025,
        "edge of the finer voxels holding cells observed nearer than near_depth_m (m); used "
        "only when smaller than voxel_size_m (0 = one voxel size)",
        0.0,
        10.0,
    )
    #: cells whose camera depth is below this go into the near voxels (m)
    near_depth_m: float = _f(
        3.0, "cells observed nearer than this camera depth (m) go into the near voxels", 0.0, 1e4
    )
    #: number of latent channels stored per voxel (must match the codec)
    latent_channels: int = _f(
        16, "latent channels stored per voxel (must match the codec)", 1, 1024
    )
    #: hard budget on memory_bytes (all tensors the memory holds), MiB
    max_memory_mb: float = _f(256.0, "hard budget on the memory's tensor bytes (MiB)", 0.001, 1.0e6)
    #: depths below this are invalid (m); also the near plane of render
    min_depth_m: float = _f(
        0.1, "depth below this is invalid; near plane of render (m)", 0.0, 1.0e3
    )
    #: depths beyond this are invalid (m)
    max_depth_m: float = _f(10.0, "depth beyond this is invalid (m)", 0.01, 1.0e4)
    #: eviction order when the budget is full: "lru" or "farthest" (from the last camera)
    eviction: str = _f("lru", "eviction when full: 'lru' (least recently seen) or 'farthest'")
    #: remove voxels that new depth rays see through (forgetting what moved)
    carve_free_space: bool = _f(True, "forget voxels that new depth rays see through")
    #: free-space margin, in voxels: carve only when the surface is this far beyond the voxel
    carve_margin_voxels: float = _f(2.0, "carving margin in voxel sizes", 0.0, 100.0)
    #: free-space margin relative to the observed depth (noise grows with depth)
    carve_margin_depth_ratio: float = _f(
        0.03, "carving margin as a fraction of the observed depth", 0.0, 1.0
    )
    #: weight a voxel loses each frame that sees through it
    carve_decrement: float = _f(8.0, "weight removed per frame that sees through a voxel", 0.0, 1e6)
    #: fusion weight cap: bounds how long a stale surface needs to be carved away
    max_weight: float = _f(32.0, "cap of a voxel's fusion weight (cells)", 1.0, 1e9)
    #: maximum splat radius in pixels at render (0 = one pixel per voxel)
    splat_radius_px: int = _f(8, "max splat radius at render (px); scaled by voxel footprint", 0, 8)
    #: render: points this far (m) behind a pixel's nearest point count as the same surface, and
    #: the one projected closest to the pixel centre wins (no drift toward slightly nearer voxels)
    render_surface_band_m: float = _f(
        0.1,
        "render: points within this depth (m) of a pixel's nearest are one surface; the one "
        "projected closest to the pixel centre wins (0 = the nearest wins)",
        0.0,
        10.0,
    )
    #: render: blend the front-surface points of a pixel (tent weight on their offset from the
    #: pixel centre) instead of taking the centre-closest one; needs render_surface_band_m > 0
    render_blend: bool = _f(
        True,
        "render: blend a pixel's front-surface points by a tent weight on their offset from the "
        "pixel centre (false: the centre-closest one)",
    )
    #: render: voxels seen from behind their fused surface normal occlude but never show (the far
    #: face of a thin wall must not tint the near one, whatever the surface band)
    render_backface_cull: bool = _f(
        True,
        "render: voxels whose observed surface faces away from the camera occlude but never show "
        "(a thin wall's far face, the unseen side of a wall)",
    )
    #: storage dtype of the fused latents ("float16" halves the dominant per-voxel cost)
    latent_dtype: str = _f("float16", "storage dtype of fused latents: 'float16' or 'float32'")
    #: compute device: "auto" (CUDA if present), "cpu", "cuda", "cuda:N"
    device: str = _f("auto", "compute device: 'auto', 'cpu', 'cuda' or 'cuda:N'")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{f.name} must be a number, got {value!r}")
                if not math.isfinite(float(value)):
                    raise ConfigError(f"{f.name} must be finite, got {value!r}")
                object.__setattr__(self, f.name, float(value))
            elif f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{f.name} must be an integer, got {value!r}")
            elif f.type in ("bool", bool) and not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be true or false, got {value!r}")
            rng = f.metadata.get("range")
            if rng is not None:
                lo, hi = rng
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    raise ConfigError(f"{f.name}={value!r} is outside [{lo}, {hi}]")
        if self.voxel_size_m <= 0.0:
            raise ConfigError("voxel_size_m must be > 0")
        if self.max_depth_m <= self.min_depth_m:
            raise ConfigError(
                f"max_depth_m ({self.max_depth_m}) must exceed min_depth_m ({self.min_depth_m})"
            )
        if self.eviction not in EVICTION_POLICIES:
            raise ConfigError(f"eviction must be one of {EVICTION_POLICIES}, got {self.eviction!r}")
        if self.latent_dtype not in LATENT_DTYPES:
            raise ConfigError(
                f"latent_dtype must be one of {tuple(LATENT_DTYPES)}, got {self.latent_dtype!r}"
            )
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device must be a non-empty string, got {self.device!r}")

    @property
    def has_near_level(self) -> bool:
        """Whether near cells go into finer voxels (level 1 keys)."""
        return 0.0 < self.near_voxel_size_m < self.voxel_size_m and self.near_depth_m > 0.0

    def level_sizes_m(self) -> tuple[float, float]:
        """Voxel edge of level 0 and level 1 (the same when there is no near level)."""
        near = self.near_voxel_size_m if self.has_near_level else self.voxel_size_m
        return self.voxel_size_m, near

    @property
    def max_memory_bytes(self) -> int:
        """The hard budget in bytes."""
        return int(self.max_memory_mb * 1024 * 1024)

    @property
    def storage_dtype(self) -> torch.dtype:
        """The torch dtype of the stored latents."""
        return LATENT_DTYPES[self.latent_dtype]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict of every field."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryConfig:
        """Build from a dict (unknown keys raise :class:`ConfigError`; missing keys default)."""
        if not isinstance(d, dict):
            raise ConfigError(f"MemoryConfig.from_dict needs a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown MemoryConfig field(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def describe(cls) -> dict[str, dict[str, Any]]:
        """Field name -> {"default", "description", "range"} (for ROS parameter declaration)."""
        out: dict[str, dict[str, Any]] = {}
        for f in dataclasses.fields(cls):
            out[f.name] = {
                "default": f.default,
                "description": f.metadata.get("description", ""),
                "range": f.metadata.get("range"),
            }
        return out
