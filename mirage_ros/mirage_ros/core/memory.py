"""LatentSpatialMemory: fused latent voxels, z-buffered readout, hard budget, carving, files.

State is a set of slot arrays (capacity ``cap``; slots ``[0, n_used)`` are live or freed holes)
plus a :class:`~mirage_ros.core.voxel_hash.SortedKeyIndex`. A freed slot has key -1 and weight
0. New voxels are appended; holes are squeezed out (``_compact``) only when the delta index or
the capacity asks for it, so integration does not re-sort the memory every frame.
Byte accounting is exact: the sum of ``numel * element_size`` of every tensor held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mirage_ros.core.config import MemoryConfig, resolve_device
from mirage_ros.core.errors import ConfigError
from mirage_ros.core.integrate import Frame, FrameCells, carve_mask, frame_cells, prepare_frame
from mirage_ros.core.voxel_hash import SortedKeyIndex
from mirage_ros.core.zbuffer import ZBufferResult, zbuffer_splat

__all__ = ["IntegrateStats", "LatentSpatialMemory", "RenderResult", "prepare_views"]

#: fold the delta index into the main run when it exceeds this fraction of the main run
_DELTA_FRACTION = 0.125
_DELTA_MIN = 4096
#: extra slots evicted when the budget is hit, as a fraction of the capacity (hysteresis)
_EVICT_SLACK = 1.0 / 64.0


@dataclass
class IntegrateStats:
    """What one :meth:`LatentSpatialMemory.integrate` call did."""

    cells_valid: int = 0  #: latent cells with valid depth
    voxels_new: int = 0  #: voxels created
    voxels_updated: int = 0  #: existing voxels fused with new cells
    voxels_carved: int = 0  #: voxels removed because rays saw through them
    voxels_evicted: int = 0  #: voxels evicted to stay within the budget


@dataclass
class RenderResult:
    """Rendered views (always batched).

    latents: (B, C, h, w) float32, 0 where not covered. depth_m: (B, h, w) float32, NaN where
    not covered. coverage: (B, h, w) bool. weight: (B, h, w) float32, 0 where not covered.
    age_s: (B, h, w) float32, seconds since the winning voxel was last observed, relative to
    the newest stamp integrated, NaN where not covered. offset: (B, 2, h, w) float32, where
    the pixel's latent sits inside it: the projection of its voxel (the tent-weighted mean over
    the blended ones) relative to the pixel centre, (u - u_c, v - v_c) in pixels of this grid,
    0 where not covered. An offset-aware decoder uses it to place the content with sub-cell
    accuracy.
    """

    latents: Tensor
    depth_m: Tensor
    coverage: Tensor
    weight: Tensor
    age_s: Tensor
    offset: Tensor


def prepare_views(
    K: Tensor, T_world_camera: Tensor, height: int, width: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Validate and batch render inputs: -> K (B, 3, 3) float32, T (B, 4, 4) float64."""
    from mirage_ros.core.errors import ShapeError
    from mirage_ros.core.geometry import validate_intrinsics, validate_pose

    validate_intrinsics(K)
    validate_pose(T_world_camera)
    for name, val in (("height", height), ("width", width)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ShapeError(f"{name} must be a positive integer, got {val!r}")
    Kb = K.reshape(-1, 3, 3).to(device=device, dtype=torch.float32)
    Tb = T_world_camera.reshape(-1, 4, 4).to(device=device, dtype=torch.float64)
    if Kb.shape[0] != Tb.shape[0]:
        if Kb.shape[0] == 1:
            Kb = Kb.expand(Tb.shape[0], 3, 3)
        elif Tb.shape[0] == 1:
            Tb = Tb.expand(Kb.shape[0], 4, 4)
        else:
            raise ShapeError(f"K batch {Kb.shape[0]} != T_world_camera batch {Tb.shape[0]}")
    return Kb.contiguous(), Tb.contiguous()


class LatentSpatialMemory:
    """A bounded, fused, deterministic latent voxel memory (see the package DESIGN.md)."""

    def __init__(self, config: MemoryConfig, codec_id: str = "none") -> None:
        if not isinstance(config, MemoryConfig):
            raise ConfigError(f"config must be a MemoryConfig, got {type(config).__name__}")
        self.config = config
        self.codec_id = str(codec_id)
        self.device = resolve_device(config.device)
        self._slot_bytes = (
            8 + 8 + 4 + 3 * 4 + 3 * 2 + config.latent_channels * config.storage_dtype.itemsize
        )  # key, stamp, weight, position, normal (float16), latents
        self._index_bytes_per_slot = 16  # key + slot of its index entry
        self.max_voxels = config.max_memory_bytes // (self._slot_bytes + self._index_bytes_per_slot)
        if self.max_voxels < 16:
            raise ConfigError(
                f"max_memory_mb={config.max_memory_mb} holds fewer than 16 voxels "
                f"({self._slot_bytes + self._index_bytes_per_slot} bytes each)"
            )
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything (counters included)."""
        self._alloc(0)
        self.n_used = 0
        self.index = SortedKeyIndex(self.device)
        self.frames_integrated = 0
        self.newest_stamp_ns: int | None = None
        self.last_camera_position: Tensor | None = None
        self.evicted_total = 0
        self.carved_total = 0
        self._n_live = 0

    def _alloc(self, cap: int) -> None:
        d, C = self.device, self.config.latent_channels
        self.keys = torch.full((cap,), -1, dtype=torch.int64, device=d)
        self.stamps = torch.zeros(cap, dtype=torch.int64, device=d)
        self.weights = torch.zeros(cap, dtype=torch.float32, device=d)
        self.positions = torch.zeros(cap, 3, dtype=torch.float32, device=d)
        self.normals = torch.zeros(cap, 3, dtype=torch.float16, device=d)
        self.latents = torch.zeros(cap, C, dtype=self.config.storage_dtype, device=d)

    def _arrays(self) -> tuple[Tensor, ...]:
        return (self.keys, self.stamps, self.weights, self.positions, self.normals, self.latents)

    @property
    def capacity(self) -> int:
        """Allocated slots."""
        return int(self.keys.shape[0])

    @property
    def num_voxels(self) -> int:
        """Live voxels."""
        return self._n_live

    @property
    def memory_bytes(self) -> int:
        """Exact bytes of every tensor held (slot arrays incl. spare capacity, and the index)."""
        return sum(t.numel() * t.element_size() for t in self._arrays()) + self.index.nbytes

    @property
    def budget_bytes(self) -> int:
        """The hard budget (bytes)."""
        return self.config.max_memory_bytes

    def stats(self) -> dict[str, Any]:
        """Counters and sizes (JSON-compatible)."""
        return {
            "voxels": self.num_voxels,
            "bytes": self.memory_bytes,
            "budget_bytes": self.budget_bytes,
            "capacity": self.capacity,
            "max_voxels": self.max_voxels,
            "evicted_total": self.evicted_total,
            "carved_total": self.carved_total,
            "frames": self.frames_integrated,
            "newest_stamp_ns": self.newest_stamp_ns,
            "device": str(self.device),
            "codec_id": self.codec_id,
        }

    def points(self) -> tuple[Tensor, Tensor, Tensor]:
        """Live voxels sorted by key: positions (N, 3) m, latents (N, C) float32, weight (N,)."""
        live = self._live_slots()
        order = torch.argsort(self.keys[live], stable=True)
        s = live[order]
        return self.positions[s].clone(), self.latents[s].float(), self.weights[s].clone()

    def _live_slots(self) -> Tensor:
        return torch.nonzero(self.keys[: self.n_used] >= 0).squeeze(1)

    # ------------------------------------------------------------------ capacity
    def _grow(self, need: int) -> None:
        cap = self.capacity
        new_cap = min(self.max_voxels, max(need, 2 * cap, 1024))
        old = self._arrays()
        self._alloc(new_cap)
        for dst, src in zip(self._arrays(), old, strict=True):
            dst[:cap] = src

    def _compact(self) -> None:
        """Squeeze out freed slots (keeping slot order) and rebuild the index."""
        live = self._live_slots()
        n = int(live.numel())
        for arr in self._arrays():
            arr[:n] = arr[live].clone()
        self.keys[n:] = -1
        self.weights[n:] = 0.0
        self.n_used = n
        self.index.rebuild(self.keys[:n])

    def _free(self, slots: Tensor) -> None:
        self.keys[slots] = -1
        self.weights[slots] = 0.0
        self._n_live -= int(slots.numel())

    def _evict(self, count: int, protect: Tensor) -> int:
        """Free ``count`` live voxels in eviction order (never a slot in ``protect``)."""
        live = self._live_slots()
        if protect.numel() > 0:
            mask = torch.ones(self.n_used, dtype=torch.bool, device=self.device)
            mask[protect] = False
            live = live[mask[live]]
        count = min(count, int(live.numel()))
        if count <= 0:
            return 0
        order = torch.argsort(self.keys[live], stable=True)  # tie-break: key, not slot order
        live = live[order]
        if self.config.eviction == "lru":
            score = self.stamps[live].to(torch.float64)
        else:
            cam = self.last_camera_position
            pos = self.positions[live]
            dist = (pos - cam).norm(dim=1) if cam is not None else pos.norm(dim=1)
            score = -dist.to(torch.float64)
        victims = live[torch.argsort(score, stable=True)[:count]]
        self._free(victims)
        self.evicted_total += count
        return count

    # ------------------------------------------------------------------ integrate
    def integrate(
        self, latents: Tensor, depth_m: Tensor, K: Tensor, T_world_camera: Tensor, stamp_ns: int
    ) -> IntegrateStats:
        """Fuse one latent frame into the memory.

        latents: (C, h, w); depth_m: (h, w) metres (0/NaN/inf/out of range = invalid); K: (3, 3)
        intrinsics of the h x w grid; T_world_camera: (4, 4); stamp_ns: int nanoseconds.
        Inputs may be on any device/dtype. Returns :class:`IntegrateStats`.
        """
        cfg = self.config
        frame = prepare_frame(
            latents, depth_m, K, T_world_camera, stamp_ns, config=cfg, device=self.device
        )
        self.last_camera_position = frame.T_world_camera[:3, 3].to(torch.float32).clone()
        cells = frame_cells(frame, cfg)
        stats = IntegrateStats(cells_valid=cells.num_cells)
        slots = self.index.lookup(cells.keys, self.keys)
        found = slots >= 0
        found_idx = torch.nonzero(found).squeeze(1)  # one sync; indexing by it needs none
        upd = slots[found_idx]
        if upd.numel() > 0:
            self._fuse(upd, cells, found_idx, frame.stamp_ns)
        stats.voxels_updated = int(upd.numel())
        if cfg.carve_free_space and self._n_live > 0:
            stats.voxels_carved = self._carve(frame, upd)
        self._insert(cells, ~found, frame.stamp_ns, upd, stats)
        self.frames_integrated += 1
        if self.newest_stamp_ns is None or frame.stamp_ns > self.newest_stamp_ns:
            self.newest_stamp_ns = frame.stamp_ns
        return stats

    def _fuse(self, upd: Tensor, cells: FrameCells, found: Tensor, stamp_ns: int) -> None:
        """Fuse the frame's cells ``found`` (indices) into their voxels' slots ``upd``."""
        w_old = self.weights[upd]
        sums = cells.sums[found]
        w_sum = w_old + sums[:, -1]
        stored = torch.cat(
            [self.latents[upd].float(), self.positions[upd], self.normals[upd].float()], dim=1
        )  # weighted running means, in float32 whatever the storage dtype
        self._store_means(upd, (stored * w_old[:, None] + sums[:, :-1]) / w_sum[:, None])
        self.weights[upd] = w_sum.clamp(max=self.config.max_weight)
        self.stamps[upd] = stamp_ns

    def _carve(self, frame: Frame, updated: Tensor) -> int:
        n = self.n_used
        mask = carve_mask(self.positions[:n], frame, self.config)
        mask &= self.keys[:n] >= 0
        if updated.numel() > 0:
            mask[updated] = False
        cand = torch.nonzero(mask).squeeze(1)
        if cand.numel() == 0:
            return 0
        self.weights[cand] -= self.config.carve_decrement
        dead = cand[self.weights[cand] <= 0.0]
        self._free(dead)
        self.carved_total += int(dead.numel())
        return int(dead.numel())

    def _store_means(self, slots: Tensor, mean: Tensor) -> None:
        """Write float32 means (M, C + 6: latents | position | normal) into ``slots``."""
        C = self.latents.shape[1]
        self.latents[slots] = mean[:, :C].to(self.latents.dtype)
        self.positions[slots] = mean[:, C : C + 3]
        self.normals[slots] = mean[:, C + 3 :].to(self.normals.dtype)

    def _insert(
        self, cells: FrameCells, new: Tensor, stamp_ns: int, protect: Tensor, st: IntegrateStats
    ) -> None:
        new_idx = torch.nonzero(new).squeeze(1)
        n_new = int(new_idx.numel())
        if n_new == 0:
            return
        if n_new > self.max_voxels:  # a single frame larger than the whole budget
            new_idx = new_idx[: self.max_voxels]
            n_new = self.max_voxels
        over = self._n_live + n_new - self.max_voxels
        if over > 0:
            slack = math.ceil(self.max_voxels * _EVICT_SLACK)
            st.voxels_evicted = self._evict(over + slack, protect)
            if self._n_live + n_new > self.max_voxels:  # protected voxels fill the budget
                st.voxels_evicted += self._evict(
                    self._n_live + n_new - self.max_voxels, protect[:0]
                )
        if self.n_used + n_new > self.capacity:
            if self.n_used + n_new > self.max_voxels or self._n_live < self.n_used:
                self._compact()
            if self.n_used + n_new > self.capacity:
                self._grow(self.n_used + n_new)
        s0 = self.n_used
        slots = torch.arange(s0, s0 + n_new, device=self.device, dtype=torch.int64)
        sums = cells.sums[new_idx]
        cnt = sums[:, -1]
        self.keys[slots] = cells.keys[new_idx]
        self._store_means(slots, sums[:, :-1] / cnt[:, None])
        self.weights[slots] = cnt.clamp(max=self.config.max_weight)
        self.stamps[slots] = stamp_ns
        self.n_used += n_new
        self._n_live += n_new
        st.voxels_new = n_new
        self.index.add(cells.keys[new_idx], slots)
        if self.index.delta_size > max(_DELTA_MIN, _DELTA_FRACTION * self.index.main_keys.numel()):
            self._compact()

    # ------------------------------------------------------------------ render
    def render(
        self,
        K: Tensor,
        T_world_camera: Tensor,
        height: int,
        width: int,
        splat_radius_px: int | None = None,
    ) -> RenderResult:
        """Render latent views at camera poses.

        K: (3, 3) or (B, 3, 3) intrinsics of the height x width output; T_world_camera: (4, 4)
        or (B, 4, 4); splat_radius_px: the splat cap (None: the config's; a render at n times
        the usual resolution passes n times it to reach as far). Returns a batched
        :class:`RenderResult` (B >= 1).
        """
        Kb, Tb = prepare_views(K, T_world_camera, height, width, self.device)
        cap = self.config.splat_radius_px if splat_radius_px is None else int(splat_radius_px)
        # every used slot goes in; freed holes are masked out, not gathered away
        n = self.n_used
        # each voxel splats by the edge of its level
        cfg = self.config
        size_m = cfg.level_sizes_m() if cfg.has_near_level else cfg.voxel_size_m
        hits = zbuffer_splat(
            self.positions[:n],
            self.keys[:n],
            Kb,
            Tb,
            height=height,
            width=width,
            near_m=self.config.min_depth_m,
            max_radius_px=cap,
            size_m=size_m,
            front_band_m=self.config.render_surface_band_m or None,
            blend=self.config.render_blend and self.config.render_surface_band_m > 0,
            normals=self.normals[:n] if self.config.render_backface_cull else None,
            valid=None if self._n_live == n else self.keys[:n] >= 0,
        )
        cov = hits.index >= 0
        B, C = Kb.shape[0], self.config.latent_channels
        offset = hits.offset
        if self._n_live == 0:
            lat = torch.zeros(B, height, width, C, dtype=torch.float32, device=self.device)
            wgt = torch.zeros(B, height, width, dtype=torch.float32, device=self.device)
            age = torch.full_like(wgt, float("nan"))
        else:
            # gather for every pixel (cheap, no boolean scatter), then mask the empty ones
            slot = hits.index.clamp(min=0)
            covf = cov.to(torch.float32)
            lat = self.latents[slot].float() * covf[..., None]
            if hits.blend_pixel is not None:
                self._blend_front(lat.view(-1, C), offset.view(-1, 2), hits)
            wgt = self.weights[slot] * covf
            newest = self.newest_stamp_ns if self.newest_stamp_ns is not None else 0
            age_all = ((newest - self.stamps[slot]).to(torch.float64) * 1e-9).to(torch.float32)
            age = torch.where(cov, age_all, torch.full_like(age_all, float("nan")))
        return RenderResult(
            latents=lat.permute(0, 3, 1, 2).contiguous(),
            depth_m=hits.depth_m,
            coverage=cov,
            weight=wgt,
            age_s=age,
            offset=offset.permute(0, 3, 1, 2).contiguous(),
        )

    def _blend_front(self, lat_flat: Tensor, off_flat: Tensor, hits: ZBufferResult) -> None:
        """Pixels with several front-surface candidates get their tent-weighted mean latent and
        offset (in place).

        The sums are taken in 2^-32 fixed point on int64, so they do not depend on the order of
        the candidates (slot order, CUDA atomics): the result is deterministic on CPU and CUDA.
        Pixels with one candidate keep its latent and offset exactly.
        """
        pix, point, w = hits.blend_pixel, hits.blend_point, hits.blend_weight
        offs = hits.blend_offset
        assert pix is not None and point is not None and w is not None and offs is not None
        n_pix, C = lat_flat.shape
        count = torch.bincount(pix, minlength=n_pix)
        blended = torch.nonzero(count > 1).squeeze(1)
        if blended.numel() == 0:
            return
        ws = w * float(1 << 32)  # float32 products are exact enough (latents are float16)
        # latents | offset | 1: the weighted sums and the sum of the weights in one index_add_,
        # over every candidate (a pixel with one candidate gets a row too, which is not written:
        # cheaper than picking the multi-candidate pixels' candidates out first)
        vals = torch.cat([self.latents[point].float(), offs, torch.ones_like(w)[:, None]], dim=1)
        lq = torch.round(vals * ws[:, None]).to(torch.int64)
        sums = torch.zeros(n_pix, C + 3, dtype=torch.int64, device=self.device)
        sums.index_add_(0, pix, lq)
        sums = sums.index_select(0, blended)
        mean = sums[:, :-1].double() / sums[:, -1:].clamp_min(1).double()
        lat_flat[blended] = mean[:, :C].to(torch.float32)
        off_flat[blended] = mean[:, C:].to(torch.float32)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write the whole memory atomically (safetensors + JSON header); see persistence."""
        from mirage_ros.core.persistence import save_memory

        save_memory(self, Path(path))

    def load(self, path: str | Path, expected_codec_id: str | None = None) -> None:
        """Replace the memory by a file's content; all-or-nothing (see persistence).

        With ``expected_codec_id``, a file written with another codec is refused: its latents
        would decode to garbage with this one.
        """
        from mirage_ros.core.persistence import load_memory_into

        load_memory_into(self, Path(path), expected_codec_id=expected_codec_id)

    @classmethod
    def from_file(
        cls, path: str | Path, device: str = "auto", max_memory_mb: float | None = None
    ) -> LatentSpatialMemory:
        """A new memory built from a file (config from the file's header, device overridden)."""
        from mirage_ros.core.persistence import memory_from_file

        memory: LatentSpatialMemory = memory_from_file(
            Path(path), device=device, max_memory_mb=max_memory_mb
        )
        return memory
