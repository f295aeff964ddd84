"""A slow, obvious reference of the latent memory's integrate and render (for tests only).

Plain Python loops over cells, voxels and pixels, float64 numpy, a dict keyed by the integer
voxel coordinates. It follows the same rules as the fast path, written the naive way:

* integrate: every valid cell is unprojected and dropped in voxel ``floor(p / size)`` of its
  level: level 1 (``size = near_voxel_size_m``) when the config has a near level and the cell's
  camera depth is below ``near_depth_m``, else level 0 (``size = voxel_size_m``);
  its normal is the cross product of the differences of its neighbours' points (one-sided on
  the border), turned to face the camera (zero next to invalid cells and across depth edges);
  per frame the cells of one voxel are summed; an existing voxel takes the weighted running
  mean (weight += cells, capped at ``max_weight``), a new one the cells' mean; then existing
  voxels not touched by this frame are carved when the minimum observed depth over the 2x2
  pixels around their sub-pixel projection (invalid = 0) exceeds their depth by the margin;
  they lose ``carve_decrement`` and vanish at weight <= 0.
* render: every voxel is projected to ``floor(u + 0.5), floor(v + 0.5)`` and splatted to the
  pixels within ``r`` of it whose centres lie within ``max(0.5 * size * f / z, 0.5)``
  of the sub-pixel projection; a pixel keeps the smallest ``(z, key & 0xffffffff, key)``.
  With back-face culling, a voxel whose normal points away from the camera counts for the
  pixel's nearest depth but never wins it (a pixel whose front surface is all back faces stays
  empty).

No budget and no eviction (use a budget the test scenes never reach).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.integrate import NORMAL_MAX_DEPTH_STEP
from mirage_ros.core.voxel_hash import KEY_BITS, KEY_OFFSET, LEVEL_SHIFT
from mirage_ros.core.zbuffer import BACKFACE_COS

__all__ = ["ReferenceLatentMemory", "ReferenceRender"]


@dataclass
class _Voxel:
    latent: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    weight: float
    stamp_ns: int


@dataclass
class ReferenceRender:
    """Single-view render: latents (C, h, w), depth_m (h, w) NaN empty, coverage, weight, key,
    offset (2, h, w): projection of the pixel's voxel minus the pixel centre (blended: the
    tent-weighted mean), 0 empty."""

    latents: np.ndarray
    depth_m: np.ndarray
    coverage: np.ndarray
    weight: np.ndarray
    key: np.ndarray
    offset: np.ndarray


_Key = tuple[int, int, int, int]  # level, i, j, k


def _packed(key: _Key) -> int:
    i, j, k = (c + KEY_OFFSET for c in key[1:])
    return (key[0] << LEVEL_SHIFT) | (i << (2 * KEY_BITS)) | (j << KEY_BITS) | k


def _size(cfg: MemoryConfig, level: int) -> float:
    return cfg.level_sizes_m()[level]


def _point(depth: np.ndarray, Kn: np.ndarray, v: int, u: int) -> np.ndarray:
    """Camera-frame point of cell (v, u)."""
    z = depth[v, u]
    return np.array([(u - Kn[0, 2]) / Kn[0, 0] * z, (v - Kn[1, 2]) / Kn[1, 1] * z, z])


def _normal(depth: np.ndarray, valid: np.ndarray, Kn: np.ndarray, v: int, u: int) -> np.ndarray:
    """Camera-frame unit normal of cell (v, u) facing the camera; zero where unknown."""
    h, w = depth.shape
    left, right, up, down = max(u - 1, 0), min(u + 1, w - 1), max(v - 1, 0), min(v + 1, h - 1)
    if not all(valid[vv, uu] for vv, uu in ((v, u), (v, left), (v, right), (up, u), (down, u))):
        return np.zeros(3)

    def point(vv: int, uu: int) -> np.ndarray:
        return _point(depth, Kn, vv, uu)

    z = depth[v, u]
    if abs(depth[v, right] - depth[v, left]) > NORMAL_MAX_DEPTH_STEP * z:
        return np.zeros(3)
    if abs(depth[down, u] - depth[up, u]) > NORMAL_MAX_DEPTH_STEP * z:
        return np.zeros(3)
    n: np.ndarray = np.cross(point(v, right) - point(v, left), point(down, u) - point(up, u))
    length = float(np.linalg.norm(n))
    if length == 0.0:
        return np.zeros(3)
    n = n / length
    return -n if float(n @ point(v, u)) > 0 else n


@dataclass
class ReferenceLatentMemory:
    """The reference memory; ``voxels`` maps (level, i, j, k) -> voxel state."""

    config: MemoryConfig
    voxels: dict[_Key, _Voxel] = field(default_factory=dict)

    def integrate(
        self, latents: Tensor, depth_m: Tensor, K: Tensor, T_world_camera: Tensor, stamp_ns: int
    ) -> None:
        """Fuse one frame: latents (C, h, w), depth_m (h, w), K (3, 3), T (4, 4)."""
        cfg = self.config
        lat = latents.detach().double().cpu().numpy()
        depth = depth_m.detach().double().cpu().numpy()
        Kn = K.detach().double().cpu().numpy()
        T = T_world_camera.detach().double().cpu().numpy()
        h, w = depth.shape
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(depth) & (depth >= cfg.min_depth_m) & (depth <= cfg.max_depth_m)
        sums: dict[_Key, list[Any]] = {}
        for v in range(h):
            for u in range(w):
                if not valid[v, u]:
                    continue
                pc = _point(depth, Kn, v, u)
                pw = T[:3, :3] @ pc + T[:3, 3]
                level = int(cfg.has_near_level and pc[2] < cfg.near_depth_m)
                vs = _size(cfg, level)
                key = (level, *(math.floor(x / vs) for x in pw))
                acc = sums.setdefault(key, [np.zeros(lat.shape[0]), np.zeros(3), np.zeros(3), 0])
                acc[0] += lat[:, v, u]
                acc[1] += pw
                acc[2] += T[:3, :3] @ _normal(depth, valid, Kn, v, u)  # world frame
                acc[3] += 1
        updated = set()
        for key, (ls, ps, ns, n) in sums.items():
            vox = self.voxels.get(key)
            if vox is not None:
                ws = vox.weight + n
                vox.latent = (vox.latent * vox.weight + ls) / ws
                vox.position = (vox.position * vox.weight + ps) / ws
                vox.normal = (vox.normal * vox.weight + ns) / ws
                vox.weight = min(ws, cfg.max_weight)
                vox.stamp_ns = stamp_ns
                updated.add(key)
        if cfg.carve_free_space:
            self._carve(depth, valid, Kn, T, updated)
        for key, (ls, ps, ns, n) in sums.items():
            if key not in self.voxels:
                self.voxels[key] = _Voxel(
                    ls / n, ps / n, ns / n, min(float(n), cfg.max_weight), stamp_ns
                )

    def _carve(
        self,
        depth: np.ndarray,
        valid: np.ndarray,
        Kn: np.ndarray,
        T: np.ndarray,
        updated: set[_Key],
    ) -> None:
        cfg = self.config
        h, w = depth.shape
        R_cw = T[:3, :3].T
        t_cw = -R_cw @ T[:3, 3]
        for key in list(self.voxels):
            if key in updated:
                continue
            vox = self.voxels[key]
            p = R_cw @ vox.position + t_cw
            z = p[2]
            if z <= cfg.min_depth_m:
                continue
            uf = Kn[0, 0] * p[0] / z + Kn[0, 2]
            vf = Kn[1, 1] * p[1] / z + Kn[1, 2]
            if not (0 <= uf <= w - 1 and 0 <= vf <= h - 1):
                continue
            u0, v0 = min(math.floor(uf), max(w - 2, 0)), min(math.floor(vf), max(h - 2, 0))
            d_min = math.inf
            for vv in range(v0, min(v0 + 2, h)):
                for uu in range(u0, min(u0 + 2, w)):
                    d_min = min(d_min, depth[vv, uu] if valid[vv, uu] else 0.0)
            margin = max(
                cfg.carve_margin_voxels * cfg.voxel_size_m, cfg.carve_margin_depth_ratio * d_min
            )
            if d_min > 0 and d_min > z + margin:
                vox.weight -= cfg.carve_decrement
                if vox.weight <= 0:
                    del self.voxels[key]

    def render(
        self,
        K: Tensor,
        T_world_camera: Tensor,
        height: int,
        width: int,
        splat_radius_px: int | None = None,
    ) -> ReferenceRender:
        """Render one view: K (3, 3), T_world_camera (4, 4); splat_radius_px as the fast one."""
        cfg = self.config
        Kn = K.detach().double().cpu().numpy()
        T = T_world_camera.detach().double().cpu().numpy()
        R_cw = T[:3, :3].T
        t_cw = -R_cw @ T[:3, 3]
        C = cfg.latent_channels
        cands: dict[
            tuple[int, int],
            list[tuple[float, float, int, int, _Key, float, tuple[float, float]]],
        ]
        cands = {}
        r = cfg.splat_radius_px if splat_radius_px is None else splat_radius_px
        back_faces: set[_Key] = set()  # they occlude but never win
        for key, vox in self.voxels.items():
            if cfg.render_backface_cull:
                toward = T[:3, 3] - vox.position
                if vox.normal @ toward < -BACKFACE_COS * np.linalg.norm(toward):
                    back_faces.add(key)
            p = R_cw @ vox.position + t_cw
            z = p[2]
            if z <= cfg.min_depth_m:
                continue
            uf = Kn[0, 0] * p[0] / z + Kn[0, 2]
            vf = Kn[1, 1] * p[1] / z + Kn[1, 2]
            u, v = math.floor(uf + 0.5), math.floor(vf + 0.5)
            ext_u = max(0.5 * _size(cfg, key[0]) * Kn[0, 0] / z, 0.5)
            ext_v = max(0.5 * _size(cfg, key[0]) * Kn[1, 1] / z, 0.5)
            pk = _packed(key)
            rr = min(r, math.floor(max(ext_u, ext_v)) + 1)  # no pixel further can be inside
            for dv in range(-rr, rr + 1):
                for du in range(-rr, rr + 1):
                    uu, vv = u + du, v + dv
                    if abs(uu - uf) > ext_u or abs(vv - vf) > ext_v:
                        continue
                    if 0 <= uu < width and 0 <= vv < height:
                        d2 = float(np.float32((uu - uf) ** 2 + (vv - vf) ** 2))
                        tent = max(1 - abs(uu - uf), 1e-3) * max(1 - abs(vv - vf), 1e-3)
                        off = (uf - uu, vf - vv)
                        cand = (float(np.float32(z)), d2, pk & 0xFFFFFFFF, pk, key, tent, off)
                        cands.setdefault((vv, uu), []).append(cand)
        # the nearest wins; with a surface band, among the points within the band of the nearest
        # the one projected closest to the pixel centre wins; ties by id; a back face counts for
        # the nearest depth but never wins (no front-facing point left: the pixel stays empty)
        # with render_blend, a pixel with several front candidates shows their tent-weighted mean
        band = cfg.render_surface_band_m
        best: dict[tuple[int, int], tuple[float, int, int, _Key]] = {}
        blended: dict[tuple[int, int], np.ndarray] = {}
        offsets: dict[tuple[int, int], np.ndarray] = {}
        for pix, cs in cands.items():
            z_near = min(c[0] for c in cs)
            if band > 0:
                z_front = float(np.float32(z_near) + np.float32(band))
                front = [c for c in cs if c[0] <= z_front and c[4] not in back_faces]
                if not front:
                    continue
                z, _, low, pk, key, _, off = min(front, key=lambda c: (c[1], c[2], c[3]))
                offsets[pix] = np.array(off)
                if cfg.render_blend and len(front) > 1:
                    w = np.array([c[5] for c in front])
                    lats = np.stack([self.voxels[c[4]].latent for c in front])
                    blended[pix] = (w[:, None] * lats).sum(axis=0) / w.sum()
                    offs = np.array([c[6] for c in front])
                    offsets[pix] = (w[:, None] * offs).sum(axis=0) / w.sum()
            else:
                front = [c for c in cs if c[0] == z_near and c[4] not in back_faces]
                if not front:
                    continue
                z, _, low, pk, key, _, off = min(front, key=lambda c: (c[0], c[2], c[3]))
                offsets[pix] = np.array(off)
            best[pix] = (z, low, pk, key)
        lat = np.zeros((C, height, width))
        depth = np.full((height, width), np.nan)
        cov = np.zeros((height, width), dtype=bool)
        wgt = np.zeros((height, width))
        keys = np.full((height, width), -1, dtype=np.int64)
        offset = np.zeros((2, height, width))
        for (vv, uu), (z, _, pk, key) in best.items():
            vox = self.voxels[key]
            lat[:, vv, uu] = blended.get((vv, uu), vox.latent)
            depth[vv, uu] = z
            cov[vv, uu] = True
            wgt[vv, uu] = vox.weight
            keys[vv, uu] = pk
            offset[:, vv, uu] = offsets[(vv, uu)]
        return ReferenceRender(lat, depth, cov, wgt, keys, offset)
