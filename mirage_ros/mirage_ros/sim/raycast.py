"""Ray casting renderer: rays x axis-aligned boxes (slab test), textures, Lambert lighting.

Fast path (:func:`cast`): each box is tested only against the pixels inside the image rectangle
its (near-plane clipped) corners project to, so the cost is about (pixels covered by boxes)
rather than (pixels x boxes). :func:`cast_reference` tests every ray against every box and is
the slow obvious reference the fast path is tested against.

Rays are ``d = R_world_camera @ K^-1 [u, v, 1]`` from the camera centre, so the hit parameter
t *is* the z-depth along the optical axis. Pixel (row v, column u) has its centre at (u, v).
"""

from __future__ import annotations

import numpy as np

from mirage_ros.core.errors import PoseError, ShapeError
from mirage_ros.sim.scene import Scene

__all__ = ["cast", "cast_reference", "render_view", "render_view_reference", "shade"]

_NEAR_M = 0.01
_EPS_T = 1e-4
_CORNERS = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=np.float64)
_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def _check(
    K: np.ndarray, T_world_camera: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_world_camera, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ShapeError(f"K must be a finite (3, 3) pinhole matrix, got shape {K.shape}")
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ShapeError(f"T_world_camera must be a finite (4, 4) matrix, got shape {T.shape}")
    R = T[:3, :3]
    if (
        np.abs(R.T @ R - np.eye(3)).max() > 1e-4
        or abs(np.linalg.det(R) - 1.0) > 1e-4
        or np.any(T[3] != (0.0, 0.0, 0.0, 1.0))
    ):
        raise PoseError("T_world_camera is not a rigid transform")
    if int(width) < 1 or int(height) < 1:
        raise ShapeError(f"image size must be positive, got {width}x{height}")
    return K, T


def _rays(K: np.ndarray, T: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 world ray directions with unit z in the camera frame."""
    u = (np.arange(width, dtype=np.float64) - K[0, 2]) / K[0, 0]
    v = (np.arange(height, dtype=np.float64) - K[1, 2]) / K[1, 1]
    R = T[:3, :3]
    d = (
        R[:, 0][None, None] * u[None, :, None]
        + R[:, 1][None, None] * v[:, None, None]
        + R[:, 2][None, None]
    )
    return np.asarray(d, dtype=np.float32)


def _safe_inverse(d: np.ndarray) -> np.ndarray:
    tiny = np.float32(1e-12)
    d = np.where(np.abs(d) < tiny, np.where(d < 0, -tiny, tiny), d)
    return np.asarray(np.float32(1.0) / d, dtype=np.float32)


def _slab(lo_rel: np.ndarray, hi_rel: np.ndarray, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit t of rays through one box.

    lo_rel, hi_rel: (3,) box corners relative to the camera centre; inv: (3, ...) inverse ray
    directions, one plane per axis. Returns t_near, t_far of shape (...).
    """
    t_near = t_far = None
    for k in range(3):
        t0 = np.float32(lo_rel[k]) * inv[k]
        t1 = np.float32(hi_rel[k]) * inv[k]
        lo_k, hi_k = np.minimum(t0, t1), np.maximum(t0, t1)
        t_near = lo_k if t_near is None else np.maximum(t_near, lo_k)
        t_far = hi_k if t_far is None else np.minimum(t_far, hi_k)
    assert t_near is not None and t_far is not None
    return t_near, t_far


def _pixel_rect(
    K: np.ndarray, T: np.ndarray, lo: np.ndarray, hi: np.ndarray, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Conservative [r0, r1) x [c0, c1) image rectangle of a box, None when not visible."""
    corners = lo + _CORNERS * (hi - lo)
    pc = (corners - T[:3, 3]) @ T[:3, :3]  # (8, 3) in the camera frame
    front = pc[:, 2] > _NEAR_M
    if not front.any():
        return None
    pts = [pc[front]]
    if not front.all():
        for a, b in _EDGES:
            if front[a] != front[b]:
                s = (_NEAR_M - pc[a, 2]) / (pc[b, 2] - pc[a, 2])
                pts.append((pc[a] + s * (pc[b] - pc[a]))[None])
    p = np.concatenate(pts)
    u = K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2]
    v = K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]
    c0, c1 = max(0, int(np.floor(u.min())) - 1), min(width, int(np.ceil(u.max())) + 2)
    r0, r1 = max(0, int(np.floor(v.min())) - 1), min(height, int(np.ceil(v.max())) + 2)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def cast(
    scene: Scene,
    K: np.ndarray,
    T_world_camera: np.ndarray,
    width: int,
    height: int,
    stamp_ns: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit per pixel: (depth_m (H, W) float32 z-depth, 0 = none; box (H, W) int64,
    -1 = none; rays (H, W, 3) float32)."""
    K, T = _check(K, T_world_camera, width, height)
    rays = _rays(K, T, width, height)
    inv = np.ascontiguousarray(_safe_inverse(rays).transpose(2, 0, 1))  # (3, H, W)
    best = np.full((height, width), np.inf, dtype=np.float32)
    box = np.full((height, width), -1, dtype=np.int64)
    origin = T[:3, 3]
    for i in np.flatnonzero(scene.active(stamp_ns)):
        rect = _pixel_rect(K, T, scene.lo[i], scene.hi[i], width, height)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        t_near, t_far = _slab(scene.lo[i] - origin, scene.hi[i] - origin, inv[:, r0:r1, c0:c1])
        b = best[r0:r1, c0:c1]
        hit = (t_near > _EPS_T) & (t_near <= t_far) & (t_near < b)
        b[hit] = t_near[hit]
        box[r0:r1, c0:c1][hit] = i
    depth = np.where(box >= 0, best, np.float32(0.0)).astype(np.float32)
    return depth, box, rays


def cast_reference(
    scene: Scene,
    K: np.ndarray,
    T_world_camera: np.ndarray,
    width: int,
    height: int,
    stamp_ns: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow obvious version of :func:`cast`: every ray against every box, no culling."""
    K, T = _check(K, T_world_camera, width, height)
    rays = _rays(K, T, width, height)
    inv = np.ascontiguousarray(_safe_inverse(rays).transpose(2, 0, 1))  # (3, H, W)
    best = np.full((height, width), np.inf, dtype=np.float32)
    box = np.full((height, width), -1, dtype=np.int64)
    active = scene.active(stamp_ns)
    for i in range(len(scene)):
        if not active[i]:
            continue
        t_near, t_far = _slab(scene.lo[i] - T[:3, 3], scene.hi[i] - T[:3, 3], inv)
        hit = (t_near > _EPS_T) & (t_near <= t_far) & (t_near < best)
        best[hit] = t_near[hit]
        box[hit] = i
    depth = np.where(box >= 0, best, np.float32(0.0)).astype(np.float32)
    return depth, box, rays


def shade(
    scene: Scene,
    K: np.ndarray,
    T_world_camera: np.ndarray,
    depth: np.ndarray,
    box: np.ndarray,
    rays: np.ndarray,
) -> np.ndarray:
    """Colour of every hit: texture x (ambient + sun + ceiling light of the space).

    depth: (H, W) float32, box: (H, W) int64 (-1 = no hit), rays: (H, W, 3) float32 as
    returned by :func:`cast`. Returns (H, W, 3) uint8. Works on (N,) planes, one per axis.
    """
    height, width = depth.shape
    rgb = np.zeros((height * width, 3), dtype=np.float32)
    sel = np.flatnonzero(box.reshape(-1) >= 0)
    if sel.size == 0:
        return rgb.reshape(height, width, 3).astype(np.uint8)
    b = box.reshape(-1)[sel]
    t = depth.reshape(-1)[sel]
    flat = rays.reshape(-1, 3)
    d = [np.ascontiguousarray(flat[sel, k]) for k in range(3)]
    origin = np.asarray(T_world_camera, dtype=np.float64)[:3, 3]
    p = [np.float32(origin[k]) + d[k] * t for k in range(3)]  # world hit points
    # entering face: the axis whose slab entry is the latest
    entry = []
    for k in range(3):
        inv = np.float32(1.0) / np.where(np.abs(d[k]) < 1e-12, np.float32(1e-12), d[k])
        lo_k = (scene.lo[:, k] - origin[k]).astype(np.float32)[b]
        hi_k = (scene.hi[:, k] - origin[k]).astype(np.float32)[b]
        entry.append(np.minimum(lo_k * inv, hi_k * inv))
    axis = np.where(entry[1] > entry[0], 1, 0)
    axis = np.where(entry[2] > np.maximum(entry[0], entry[1]), 2, axis)
    d_axis = np.where(axis == 0, d[0], np.where(axis == 1, d[1], d[2]))
    positive = d_axis < 0  # a ray going to -axis hits the +axis face
    sign = np.where(positive, np.float32(1.0), np.float32(-1.0))
    face = 2 * axis + positive
    bf = b * 6 + face
    material = scene.materials.reshape(-1)[bf]
    # surface coordinates in metres (v points down on walls so photos stand upright)
    u = np.where(axis == 0, p[1], p[0])
    u = np.where(((axis == 0) & ~positive) | ((axis == 1) & positive), -u, u)
    v = np.where(axis == 2, p[1], -p[2])
    norm = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    cos_in = np.abs(d_axis) / np.maximum(norm, 1e-9)
    footprint = (t / np.float32(K[0, 0])) / np.sqrt(np.maximum(cos_in, 0.05))
    albedo = scene.library.sample(material, u, v, footprint.astype(np.float32))
    sun = scene.light_dir.astype(np.float32)[axis] * sign
    light = np.float32(scene.ambient) + np.float32(0.2) * np.maximum(sun, 0.0)
    light_rgb = np.repeat(light[:, None], 3, axis=1)
    space = scene.face_space.reshape(-1)[bf]  # the room or corridor the surface faces
    inside = np.flatnonzero(space >= 0)
    if inside.size:
        sp = space[inside]
        to_lamp = []
        for k in range(2):
            mid, half = scene.lamp_mid[sp, k], scene.lamp_half[sp, k]
            q = p[k][inside]
            to_lamp.append(np.clip(q, mid - half, mid + half) - q)
        to_lamp.append(np.float32(scene.height_m - 0.15) - p[2][inside])
        r2 = to_lamp[0] ** 2 + to_lamp[1] ** 2 + to_lamp[2] ** 2
        r = np.maximum(np.sqrt(r2), 1e-3)
        ax = axis[inside]
        facing = np.where(ax == 0, to_lamp[0], np.where(ax == 1, to_lamp[1], to_lamp[2]))
        lam = np.maximum(sign[inside] * facing / r, 0.0)
        gain = scene.lamp_power[sp] * np.float32(0.75) * lam / (1.0 + r2 / np.float32(6.25))
        light_rgb[inside] += gain[:, None] * scene.lamp_tint[sp]
    rgb[sel] = albedo * light_rgb
    out = np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return out.reshape(height, width, 3)


def render_view(
    scene: Scene,
    K: np.ndarray,
    T_world_camera: np.ndarray,
    width: int,
    height: int,
    stamp_ns: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the scene from a camera.

    K: (3, 3) pinhole intrinsics; T_world_camera: (4, 4) optical frame (z forward, x right,
    y down) in the map frame; stamp_ns selects the objects that exist at that time (None: the
    initial state). Returns rgb (H, W, 3) uint8 and depth_m (H, W) float32 z-depth in metres,
    0 where no surface was hit.
    """
    depth, box, rays = cast(scene, K, T_world_camera, width, height, stamp_ns)
    return shade(scene, K, T_world_camera, depth, box, rays), depth


def render_view_reference(
    scene: Scene,
    K: np.ndarray,
    T_world_camera: np.ndarray,
    width: int,
    height: int,
    stamp_ns: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_view` with the brute-force caster (for agreement tests)."""
    depth, box, rays = cast_reference(scene, K, T_world_camera, width, height, stamp_ns)
    return shade(scene, K, T_world_camera, depth, box, rays), depth
