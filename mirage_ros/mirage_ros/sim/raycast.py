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
    """Entry and exit t of rays (…, 3 inverse directions) through one box (relative bounds)."""
    t0 = lo_rel.astype(np.float32) * inv
    t1 = hi_rel.astype(np.float32) * inv
    t_near = np.minimum(t0, t1).max(axis=-1)
    t_far = np.maximum(t0, t1).min(axis=-1)
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
    inv = _safe_inverse(rays)
    best = np.full((height, width), np.inf, dtype=np.float32)
    box = np.full((height, width), -1, dtype=np.int64)
    origin = T[:3, 3]
    for i in np.flatnonzero(scene.active(stamp_ns)):
        rect = _pixel_rect(K, T, scene.lo[i], scene.hi[i], width, height)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        t_near, t_far = _slab(scene.lo[i] - origin, scene.hi[i] - origin, inv[r0:r1, c0:c1])
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
    inv = _safe_inverse(rays)
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
    """Colour of every hit: texture x (ambient + sun + ceiling light of the space). (H, W, 3) u8."""
    height, width = depth.shape
    rgb = np.zeros((height * width, 3), dtype=np.float32)
    sel = np.flatnonzero(box.reshape(-1) >= 0)
    if sel.size == 0:
        return rgb.reshape(height, width, 3).astype(np.uint8)
    b = box.reshape(-1)[sel]
    t = depth.reshape(-1)[sel]
    d = rays.reshape(-1, 3)[sel]
    origin = np.asarray(T_world_camera, dtype=np.float64)[:3, 3].astype(np.float32)
    p = origin[None] + d * t[:, None]  # (N, 3) world hit points
    # entering face: the axis whose slab entry is the latest
    inv = _safe_inverse(d)
    lo = (scene.lo[b] - origin).astype(np.float32)
    hi = (scene.hi[b] - origin).astype(np.float32)
    axis = np.minimum(lo * inv, hi * inv).argmax(axis=1)
    ar = np.arange(sel.size)
    positive = d[ar, axis] < 0  # ray going to -axis hits the +axis face
    face = 2 * axis + positive
    material = scene.materials[b, face]
    normal = np.zeros_like(p)
    normal[ar, axis] = np.where(positive, 1.0, -1.0)
    # surface coordinates in metres (v points down on walls so photos stand upright)
    u = np.where(axis == 0, p[:, 1], p[:, 0])
    v = np.where(axis == 2, p[:, 1], -p[:, 2])
    u = np.where((axis == 0) & ~positive, -u, u)
    u = np.where((axis == 1) & positive, -u, u)
    dist = np.linalg.norm(d, axis=1) * t
    cos_in = np.abs(d[ar, axis]) / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
    footprint = (t / np.float32(K[0, 0])) / np.sqrt(np.maximum(cos_in, 0.05))
    albedo = scene.library.sample(material, u, v, footprint.astype(np.float32))
    light = np.full(sel.size, scene.ambient, dtype=np.float32)
    light += 0.2 * np.maximum(normal @ scene.light_dir.astype(np.float32), 0.0)
    space = scene.space_index(p[:, :2])
    inside = space >= 0
    if inside.any():
        sp = space[inside]
        q = p[inside]
        lamp = np.empty_like(q)
        lo_s, hi_s = scene.space_lo[sp], scene.space_hi[sp]
        half = np.maximum((hi_s - lo_s) / 2 - 1.0, 0.0)
        mid = (hi_s + lo_s) / 2
        lamp[:, :2] = np.clip(q[:, :2], mid - half, mid + half)
        lamp[:, 2] = scene.height_m - 0.15
        to_lamp = lamp - q
        r = np.maximum(np.linalg.norm(to_lamp, axis=1), 1e-3)
        lam = np.maximum((normal[inside] * to_lamp).sum(axis=1) / r, 0.0)
        gain = scene.lamp_power[sp] * 0.75 * lam / (1.0 + (r / 2.5) ** 2)
        light_rgb = light[:, None] * np.ones((1, 3), dtype=np.float32)
        light_rgb[inside] += gain[:, None] * scene.lamp_tint[sp]
    else:
        light_rgb = light[:, None] * np.ones((1, 3), dtype=np.float32)
    _ = dist
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
