"""Deterministic z-buffered splatting of 3-D points into one or many pinhole views.

For every pixel the nearest point wins; exact depth ties are broken by the smaller point id
(ids must be unique, non-negative int64: voxel keys or append indices), so the winner does
not depend on the order in which points are stored. No scatter with duplicate indices is
relied upon: the per-pixel minimum is taken with ``scatter_reduce_(..., "amin")`` (min is
order-free, hence deterministic on CPU and CUDA) on a packed int64 key
``(float32 bits of z) << 32 | (id & 0xffffffff)`` -- for positive floats the IEEE bit pattern
is monotonic in the value, so no depth quantisation is needed. When two candidates of one
pixel share that packed key (same z bits and same low id bits) a second ``amin`` on the full
id decides. The winning entries are then unique per pixel and written by plain indexing.

Splat footprint: a point always covers the pixel it projects to (``floor(u + 0.5)``), plus
every pixel within ``max_radius_px`` of it whose centre lies inside the point's projected
square (half-size ``0.5 * size_m * f / z`` pixels around the sub-pixel projection). Near
surfaces thus close the gaps between voxels, while far points stay one pixel and edges are
not bloated beyond the voxel's true extent. Each point is tested on the smallest square that
holds its footprint (its own pixel alone, 3x3, 5x5, or the full ``(2r+1)^2`` square), so a large
cap costs only for the near points. Occlusion pre-cull: a point covering only its own pixel that
lies beyond the nearest own-pixel depth of that pixel (plus the band) is dropped before the
footprints are enumerated; it could not win, blend or set the pixel's nearest depth, so the
result is the same, and far fine voxels (many per pixel) cost one comparison each.

Back faces (``normals``): a point whose fused surface normal faces away from the camera
(``n . (c - x) < -BACKFACE_COS * |c - x|``, with ``|n| <= 1`` the mean of unit normals) still
occludes -- it counts for the pixel's nearest depth -- but never wins a pixel or joins a blend.
So a thin wall's far face never blends into its near face, and where the near face was never
observed the pixel stays empty instead of showing the far face's texture or what lies behind
the wall. A point without a normal (zero) or with one that averaged out (seen from both sides)
is never a back face.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mirage_ros.core.geometry import invert_pose
from mirage_ros.core.voxel_hash import LEVEL_SHIFT

__all__ = ["BACKFACE_COS", "ZBufferResult", "zbuffer_splat"]

#: a point is a back face when the camera lies this far (cosine) behind its normal's plane
BACKFACE_COS = 0.2

_LOW32 = 0xFFFFFFFF
#: views are processed in chunks so that views x points stays below this
_MAX_BATCH_ELEMS = 1 << 24


@dataclass
class ZBufferResult:
    """Per-pixel winners of a z-buffer pass.

    index: (B, h, w) int64, index of the winning point, -1 where empty.
    depth_m: (B, h, w) float32, z of the winner in the view's camera frame, NaN where empty.
    offset: (B, h, w, 2) float32, where the winner projects relative to the pixel centre
    (u - u_c, v - v_c) in pixels, 0 where empty.
    blend_pixel / blend_point / blend_weight / blend_offset: (M,) (offset (M, 2)) with
    ``blend=True``: every front-surface candidate (flat pixel index over B*h*w, point index,
    tent weight in (0, 1], its offset as above); else None.
    """

    index: Tensor
    depth_m: Tensor
    offset: Tensor
    blend_pixel: Tensor | None = None
    blend_point: Tensor | None = None
    blend_weight: Tensor | None = None
    blend_offset: Tensor | None = None


def zbuffer_splat(
    points_world: Tensor,
    point_ids: Tensor,
    K: Tensor,
    T_world_camera: Tensor,
    *,
    height: int,
    width: int,
    near_m: float,
    max_radius_px: int = 0,
    size_m: float | tuple[float, ...] | None = None,
    front_band_m: float | None = None,
    blend: bool = False,
    normals: Tensor | None = None,
    valid: Tensor | None = None,
) -> ZBufferResult:
    """Render the nearest point per pixel for B views in one pass.

    points_world: (N, 3) float32; point_ids: (N,) int64 unique >= 0; K: (B, 3, 3);
    T_world_camera: (B, 4, 4); near_m: points with z <= near_m are culled; max_radius_px:
    splat radius cap; size_m: the points' physical size for the footprint: one for all, or one
    per level when the ids are memory keys (``voxel_hash``: a key's level picks its size) (None =
    always ``max_radius_px``); front_band_m: see the module doc; blend (needs front_band_m): also
    return every front-surface candidate with the tent weight
    ``max(1 - |du|, 1e-3) * max(1 - |dv|, 1e-3)`` of its offset from the pixel centre;
    normals: (N, 3) world-frame surface normals (any float dtype): back faces occlude but never
    win a pixel (None: no back faces); valid: (N,) bool, points that take part (None: all; the
    others' values and ids are never read, so a slot array with freed holes needs no gather).
    """
    if blend and front_band_m is None:
        raise ValueError("zbuffer_splat: blend needs front_band_m")
    device = points_world.device
    B = K.shape[0]
    n_pts = points_world.shape[0]
    if B > 1 and B * n_pts > _MAX_BATCH_ELEMS:  # bound the (B, N, 3) temporaries
        step = max(1, _MAX_BATCH_ELEMS // max(n_pts, 1))
        parts = [
            zbuffer_splat(
                points_world, point_ids, K[i : i + step], T_world_camera[i : i + step],
                height=height, width=width, near_m=near_m, max_radius_px=max_radius_px,
                size_m=size_m, front_band_m=front_band_m, blend=blend, normals=normals,
                valid=valid,
            )
            for i in range(0, B, step)
        ]  # fmt: skip
        out = ZBufferResult(
            torch.cat([p.index for p in parts]),
            torch.cat([p.depth_m for p in parts]),
            torch.cat([p.offset for p in parts]),
        )
        if blend:  # chunk k's flat pixel indices start at view k * step
            pix_parts, point_parts, weight_parts, offset_parts = [], [], [], []
            for k, part in enumerate(parts):
                assert part.blend_pixel is not None and part.blend_point is not None
                assert part.blend_weight is not None and part.blend_offset is not None
                pix_parts.append(part.blend_pixel + k * step * height * width)
                point_parts.append(part.blend_point)
                weight_parts.append(part.blend_weight)
                offset_parts.append(part.blend_offset)
            out.blend_pixel = torch.cat(pix_parts)
            out.blend_point = torch.cat(point_parts)
            out.blend_weight = torch.cat(weight_parts)
            out.blend_offset = torch.cat(offset_parts)
        return out
    hw = height * width
    index = torch.full((B, height, width), -1, dtype=torch.int64, device=device)
    depth = torch.full((B, height, width), float("nan"), dtype=torch.float32, device=device)
    offset = torch.zeros((B, height, width, 2), dtype=torch.float32, device=device)
    nothing: tuple[Tensor | None, ...] = (None, None, None, None)
    if blend:  # no candidates, but say so with empty tensors
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        empty_f = empty.to(torch.float32)
        nothing = (empty, empty, empty_f, empty_f.view(0, 2))
    if points_world.shape[0] == 0:
        return ZBufferResult(index, depth, offset, *nothing)
    T_cw = invert_pose(T_world_camera.to(device=device, dtype=torch.float64)).to(torch.float32)
    Kf = K.to(device=device, dtype=torch.float32)
    R = T_cw[:, :3, :3]
    t = T_cw[:, :3, 3]
    # (B, 3, N): a 3x3 times 3xN product (4x faster on CPU than N x 3 times 3x3, same bits)
    # and each coordinate a contiguous row for the elementwise work below
    p = torch.matmul(R, points_world.T) + t[:, :, None]
    z = p[:, 2]
    r = int(max_radius_px)
    fx, fy = Kf[:, 0, 0, None], Kf[:, 1, 1, None]
    zs = torch.where(z > near_m, z, torch.ones_like(z))
    u_f = fx * p[:, 0] / zs + Kf[:, 0, 2, None]
    v_f = fy * p[:, 1] / zs + Kf[:, 1, 2, None]
    lim_u, lim_v = width - 0.5 + r, height - 0.5 + r
    keep = (z > near_m) & (u_f >= -0.5 - r) & (u_f < lim_u) & (v_f >= -0.5 - r) & (v_f < lim_v)
    if valid is not None:
        keep &= valid.to(device)[None, :]
    flat = torch.nonzero(keep.view(-1)).squeeze(1)
    if flat.numel() == 0:
        return ZBufferResult(index, depth, offset, *nothing)
    b_idx = torch.div(flat, n_pts, rounding_mode="floor")
    n_idx = flat - b_idx * n_pts
    zk = z.reshape(-1).index_select(0, flat)
    uf = u_f.reshape(-1).index_select(0, flat)
    vf = v_f.reshape(-1).index_select(0, flat)
    uk = torch.floor(uf + 0.5).to(torch.int64)
    vk = torch.floor(vf + 0.5).to(torch.int64)
    box: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # footprint: lo/hi u, lo/hi v
    reach: Tensor | None = None
    one_pixel: Tensor | None = None  # points whose only candidate is their own pixel
    if r == 0:
        one_pixel = torch.ones_like(uk, dtype=torch.bool)
    elif size_m is not None:
        # pixel centres inside the point's projected square (at least its own pixel)
        half: Tensor | float
        if isinstance(size_m, tuple):  # the level of a memory key picks its size
            half = 0.5 * torch.tensor(size_m, device=device)[point_ids[n_idx] >> LEVEL_SHIFT]
        else:
            half = 0.5 * size_m
        ext_u = (half * fx.squeeze(1)[b_idx] / zk).clamp_(min=0.5)
        ext_v = (half * fy.squeeze(1)[b_idx] / zk).clamp_(min=0.5)
        box = (uf - ext_u, uf + ext_u, vf - ext_v, vf + ext_v)
        reach = _reach(uk, vk, *box, r)
        one_pixel = reach == 0
    if one_pixel is not None:
        # Occlusion pre-cull: a one-pixel point lying beyond the nearest own-pixel depth of its
        # pixel (plus the band) can neither win nor blend nor set that pixel's nearest depth,
        # so it is dropped before the footprints are enumerated. The result is identical; far
        # fine voxels (many per pixel) then cost one comparison each.
        own = (uk >= 0) & (uk < width) & (vk >= 0) & (vk < height)
        own_pix = b_idx * hw + vk.clamp(0, height - 1) * width + uk.clamp(0, width - 1)
        z_own = torch.where(own, zk, torch.full_like(zk, float("inf")))
        zmin_own = torch.full((B * hw,), float("inf"), dtype=torch.float32, device=device)
        zmin_own.scatter_reduce_(0, own_pix, z_own, reduce="amin", include_self=True)
        hidden = one_pixel & own & (zk > zmin_own[own_pix] + (front_band_m or 0.0))
        if bool(hidden.any()):
            kept = torch.nonzero(~hidden).squeeze(1)
            b_idx, n_idx, zk, uf, vf, uk, vk = _take(kept, b_idx, n_idx, zk, uf, vf, uk, vk)
            if box is not None:
                lo_u, hi_u, lo_v, hi_v = _take(kept, *box)
                box = (lo_u, hi_u, lo_v, hi_v)
            reach = None if reach is None else reach[kept]
    back: Tensor | None = None  # back faces occlude but never win a pixel
    if normals is not None:
        cam = T_world_camera[:, :3, 3].to(device=device, dtype=torch.float32)
        toward = cam[b_idx] - points_world[n_idx]
        facing = (normals[n_idx].float() * toward).sum(dim=1)
        back = facing < -BACKFACE_COS * toward.norm(dim=1)
        if not bool(back.any()):
            back = None
    if r > 0:
        if size_m is None:
            dx, dy = _square(r, device)
            e_idx = torch.arange(uk.numel(), device=device).repeat_interleave(dx.numel())
            ddx, ddy = dx.repeat(uk.numel()), dy.repeat(uk.numel())
        else:
            assert box is not None and reach is not None
            e_idx, ddx, ddy = _footprint(uk, vk, *box, reach, r)
        uk = uk[e_idx] + ddx
        vk = vk[e_idx] + ddy
    else:
        e_idx = None
    # the candidates inside the image; each array is gathered once (from its point's row)
    inside = torch.nonzero((uk >= 0) & (uk < width) & (vk >= 0) & (vk < height)).squeeze(1)
    uk, vk = _take(inside, uk, vk)
    src = inside if e_idx is None else e_idx[inside]
    b_idx, n_idx, zk, uf, vf = _take(src, b_idx, n_idx, zk, uf, vf)
    back = None if back is None else back[src]
    pix = b_idx * hw + vk * width + uk
    ids = point_ids[n_idx]
    zbits = zk.contiguous().view(torch.int32).to(torch.int64)
    du = uf - uk.to(torch.float32)  # where the point projects, relative to the pixel centre
    dv = vf - vk.to(torch.float32)
    if front_band_m is not None or back is not None:
        # keep the front surface (z within the band of the pixel's nearest, back faces included
        # in that nearest but never kept), then let the point projected closest to the pixel
        # centre win: no sub-cell drift toward nearer voxels
        zmin = torch.full((B * hw,), float("inf"), dtype=torch.float32, device=device)
        zmin.scatter_reduce_(0, pix, zk, reduce="amin", include_self=True)
        front = zk <= zmin[pix] + (front_band_m or 0.0)
        if back is not None:
            front &= ~back
        sel = torch.nonzero(front).squeeze(1)
        pix, ids, zk, n_idx, du, dv = _take(sel, pix, ids, zk, n_idx, du, dv)
        if front_band_m is not None:
            zbits = (du**2 + dv**2).contiguous().view(torch.int32).to(torch.int64)
        else:
            zbits = zbits[sel]
    packed = (zbits << 32) | (ids & _LOW32)
    best = torch.full((B * hw,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    best.scatter_reduce_(0, pix, packed, reduce="amin", include_self=True)
    win = packed == best[pix]
    if int(win.sum()) != int((best != torch.iinfo(torch.int64).max).sum()):
        # a pixel has several candidates with equal packed keys: decide on the full id
        cand = torch.nonzero(win).squeeze(1)
        best_id = torch.full_like(best, torch.iinfo(torch.int64).max)
        best_id.scatter_reduce_(0, pix[cand], ids[cand], reduce="amin", include_self=True)
        win = torch.zeros_like(win)
        win[cand] = ids[cand] == best_id[pix[cand]]
    offsets = torch.stack([du, dv], dim=1)
    wsel = torch.nonzero(win).squeeze(1)
    wp, w_point, w_z, w_off = _take(wsel, pix, n_idx, zk, offsets)
    index.view(-1)[wp] = w_point
    depth.view(-1)[wp] = w_z
    offset.view(-1, 2)[wp] = w_off
    if blend:
        tent = (1.0 - du.abs()).clamp_(min=1e-3) * (1.0 - dv.abs()).clamp_(min=1e-3)
        return ZBufferResult(index, depth, offset, pix, n_idx, tent, offsets)
    return ZBufferResult(index, depth, offset)


def _take(rows: Tensor, *arrays: Tensor) -> tuple[Tensor, ...]:
    """The given rows of each array (one index computed once, instead of a boolean mask per
    array: each mask index is a nonzero of its own, and a host sync on CUDA)."""
    return tuple(a.index_select(0, rows) for a in arrays)


def _square(r: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel offsets (dx, dy) of the (2r+1)^2 square, row-major."""
    offs = torch.arange(-r, r + 1, device=device, dtype=torch.int64)
    dy, dx = torch.meshgrid(offs, offs, indexing="ij")
    return dx.reshape(-1), dy.reshape(-1)


#: points reaching up to this far get the smallest square that holds them (own pixel, 3x3, 5x5);
#: the rest get the full (2r+1)^2 square
_SMALL_RADIUS = 2


def _reach(
    uk: Tensor, vk: Tensor, lo_u: Tensor, hi_u: Tensor, lo_v: Tensor, hi_v: Tensor, r: int
) -> Tensor:
    """How many pixels (0..r) a point's footprint box reaches from its own pixel (uk, vk): the
    ``floor`` of the box's farthest side, with a margin for float rounding."""
    ukf, vkf = uk.to(lo_u.dtype), vk.to(lo_v.dtype)
    far_side = torch.stack([ukf - lo_u, hi_u - ukf, vkf - lo_v, hi_v - vkf]).amax(dim=0)
    return torch.floor(far_side + 1e-3).clamp_(min=0, max=r)


def _footprint(
    uk: Tensor,
    vk: Tensor,
    lo_u: Tensor,
    hi_u: Tensor,
    lo_v: Tensor,
    hi_v: Tensor,
    reach: Tensor,
    r: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Every pixel within ``r`` of a point's own pixel (uk, vk) whose centre lies inside its
    footprint box ``[lo_u, hi_u] x [lo_v, hi_v]`` (which contains the own pixel's centre):
    (point index, dx, dy) per candidate. ``reach``: :func:`_reach` of the same boxes.

    Points are grouped by reach and each group is tested on the smallest square that holds
    it: reach 0 (far points, smaller than a pixel: usually most of them) is the own pixel
    alone, reach 1 the 3x3 square, reach 2 the 5x5 one, the rest the full (2r+1)^2 square. So
    a large cap (near surfaces without gaps) costs only for the near points, and fine voxels
    seen from afar cost one candidate each. The candidates are the same as testing every point
    on the full square (their order differs, which nothing downstream depends on: the z-buffer
    takes order-free minima and the blend sums in fixed point).
    """
    device = uk.device
    ukf, vkf = uk.to(lo_u.dtype), vk.to(lo_v.dtype)
    # group g holds the points that reach no further than radius[g] (and beyond radius[g - 1])
    radii = list(range(min(r, _SMALL_RADIUS) + 1)) + ([r] if r > _SMALL_RADIUS else [])
    e_parts, dx_parts, dy_parts = [], [], []
    lower = -1
    for radius in radii:
        sel = (reach > lower) & (reach <= radius)
        lower = radius
        pts = torch.nonzero(sel).squeeze(1)
        if pts.numel() == 0:
            continue
        if radius == 0:  # the own pixel's centre is always inside the box
            zero = torch.zeros_like(pts)
            e_parts.append(pts)
            dx_parts.append(zero)
            dy_parts.append(zero)
            continue
        dx, dy = _square(radius, device)
        u = ukf[pts, None] + dx[None, :]
        v = vkf[pts, None] + dy[None, :]
        ok = (u >= lo_u[pts, None]) & (u <= hi_u[pts, None])
        ok &= (v >= lo_v[pts, None]) & (v <= hi_v[pts, None])
        e_idx, s_idx = torch.nonzero(ok, as_tuple=True)
        e_parts.append(pts[e_idx])
        dx_parts.append(dx[s_idx])
        dy_parts.append(dy[s_idx])
    if not e_parts:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty, empty
    return torch.cat(e_parts), torch.cat(dx_parts), torch.cat(dy_parts)
