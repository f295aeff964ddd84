"""Per-frame kernels of integration: input checks, cell grouping by voxel, free-space carving.

Kept apart from the memory's state handling so the fast path reads as three steps:
``prepare_frame`` (validate + move), ``frame_cells`` (unproject, key, group by voxel with a
sort over the frame's cells only; ``cell_normals`` gives each cell its surface normal) and
``carve_mask`` (which stored voxels this frame's rays see through).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional

from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ShapeError
from mirage_ros.core.geometry import (
    invert_pose,
    unproject,
    valid_depth_mask,
    validate_intrinsics,
    validate_pose,
)
from mirage_ros.core.voxel_hash import pack_keys, voxel_coords

__all__ = [
    "NORMAL_MAX_DEPTH_STEP",
    "Frame",
    "FrameCells",
    "carve_mask",
    "cell_normals",
    "frame_cells",
    "prepare_frame",
]

#: a cell's normal is estimated only where the depth of its opposite neighbours differs by at
#: most this fraction of its own depth (a depth edge gives no normal, so none is made up there)
NORMAL_MAX_DEPTH_STEP = 0.25


@dataclass
class Frame:
    """A validated frame on the memory's device.

    latents: (C, h, w) float32; depth_m: (h, w) float32 (invalid = 0); valid: (h, w) bool;
    K: (3, 3) float32; T_world_camera: (4, 4) float64; stamp_ns: int.
    """

    latents: Tensor
    depth_m: Tensor
    valid: Tensor
    K: Tensor
    T_world_camera: Tensor
    stamp_ns: int
    #: K's fx, fy, cx, cy as the float32 values of ``K`` (Python floats: no device op to read)
    fx_fy_cx_cy: tuple[float, float, float, float]


@dataclass
class FrameCells:
    """A frame's valid cells grouped by voxel (U unique voxels, sorted by key).

    keys: (U,) int64; sums: (U, C + 7) float32, per voxel the sums of its cells' latents (C),
    world positions in metres (3), unit world-frame normals (3; facing the camera, zero for a
    cell without one) and the cell count (1), summed by one ``index_add_``; the properties are
    views of its columns.
    """

    keys: Tensor
    sums: Tensor
    num_cells: int

    @property
    def latent_sums(self) -> Tensor:
        return self.sums[:, :-7]

    @property
    def position_sums(self) -> Tensor:
        return self.sums[:, -7:-4]

    @property
    def normal_sums(self) -> Tensor:
        return self.sums[:, -4:-1]

    @property
    def counts(self) -> Tensor:
        return self.sums[:, -1]


def prepare_frame(
    latents: Tensor,
    depth_m: Tensor,
    K: Tensor,
    T_world_camera: Tensor,
    stamp_ns: int,
    *,
    config: MemoryConfig,
    device: torch.device,
) -> Frame:
    """Validate integrate() inputs (one check, typed errors) and move them to ``device``."""
    if not isinstance(latents, Tensor) or latents.dim() != 3:
        raise ShapeError(f"latents must be (C, h, w), got {getattr(latents, 'shape', None)}")
    if latents.shape[0] != config.latent_channels:
        raise ShapeError(
            f"latents have {latents.shape[0]} channels, the memory holds {config.latent_channels}"
        )
    if not latents.is_floating_point():
        raise ShapeError(f"latents must be floating point, got {latents.dtype}")
    if not isinstance(depth_m, Tensor) or tuple(depth_m.shape) != tuple(latents.shape[1:]):
        raise ShapeError(
            f"depth_m must be (h, w) = {tuple(latents.shape[1:])}, "
            f"got {getattr(depth_m, 'shape', None)}"
        )
    validate_intrinsics(K)
    validate_pose(T_world_camera)
    if K.dim() != 2 or T_world_camera.dim() != 2:
        raise ShapeError("integrate takes one frame: K (3, 3) and T_world_camera (4, 4)")
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, int):
        raise ShapeError(f"stamp_ns must be an int (nanoseconds), got {type(stamp_ns).__name__}")
    lat = latents.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(lat).all()):
        raise ShapeError("latents contain NaN or inf")
    d = depth_m.to(device=device, dtype=torch.float32)
    valid = valid_depth_mask(d, config.min_depth_m, config.max_depth_m)
    d = torch.where(valid, d, torch.zeros_like(d))
    K32 = K.to(dtype=torch.float32)
    k = K32.detach().cpu().reshape(-1).tolist()
    return Frame(
        latents=lat,
        depth_m=d,
        valid=valid,
        K=K32.to(device=device),
        T_world_camera=T_world_camera.to(device=device, dtype=torch.float64),
        stamp_ns=int(stamp_ns),
        fx_fy_cx_cy=(k[0], k[4], k[2], k[5]),
    )


def cell_normals(depth_m: Tensor, valid: Tensor, K: Tensor, points: Tensor | None = None) -> Tensor:
    """Camera-frame unit surface normals of a depth grid's cells -> (h, w, 3), zero where unknown.

    The normal of cell (v, u) is the cross product of the differences of its neighbours' points,
    ``P[v, u+1] - P[v, u-1]`` and ``P[v+1, u] - P[v-1, u]`` (on the border the cell itself
    stands in for the missing neighbour: a one-sided difference), turned to face the camera. It
    is unknown (zero) where the cell or one of its neighbours is invalid, and across depth
    edges: where the two neighbours along either axis differ in depth by more than
    ``NORMAL_MAX_DEPTH_STEP`` times the cell's depth.
    """
    if points is None:  # ``points``: ``unproject(depth_m, K)`` when the caller has it
        points = unproject(depth_m.to(torch.float32), K)
    P = functional.pad(points.permute(2, 0, 1)[None], (1, 1, 1, 1), "replicate")[0].permute(
        1, 2, 0
    )  # (h + 2, w + 2, 3): the border repeats its cells
    ok = functional.pad(valid[None, None].float(), (1, 1, 1, 1), "replicate")[0, 0] > 0
    gx = P[1:-1, 2:] - P[1:-1, :-2]
    gy = P[2:, 1:-1] - P[:-2, 1:-1]
    good = ok[1:-1, 1:-1] & ok[1:-1, 2:] & ok[1:-1, :-2] & ok[2:, 1:-1] & ok[:-2, 1:-1]
    step = NORMAL_MAX_DEPTH_STEP * P[1:-1, 1:-1, 2]
    good &= gx[..., 2].abs() <= step  # the neighbours' depth difference along each axis
    good &= gy[..., 2].abs() <= step
    n = torch.linalg.cross(gx, gy, dim=-1)
    length = n.norm(dim=-1)
    good &= length > 0
    n = n / length.clamp_min(1e-30)[..., None]
    away = (n * P[1:-1, 1:-1]).sum(dim=-1) > 0  # pointing away from the camera: flip it
    n = torch.where(away[..., None], -n, n)
    return torch.where(good[..., None], n, torch.zeros_like(n))


def frame_cells(frame: Frame, config: MemoryConfig) -> FrameCells:
    """Unproject valid cells, key them by voxel and sum them per voxel (frame-local sort).

    A cell observed nearer than ``near_depth_m`` goes into a voxel of the finer near level
    (when the config has one), the others into ``voxel_size_m`` voxels."""
    C = frame.latents.shape[0]
    # the valid cells' flat indices, found once (every boolean mask index is a device sync)
    idx = torch.nonzero(frame.valid.flatten()).squeeze(1)
    grid = unproject(frame.depth_m, frame.K)  # (h, w, 3), shared with the normals
    pts_cam = grid.reshape(-1, 3)[idx]  # (M, 3)
    R = frame.T_world_camera[:3, :3].to(torch.float32)
    t = frame.T_world_camera[:3, 3].to(torch.float32)
    pts = pts_cam @ R.T + t
    nrm = cell_normals(frame.depth_m, frame.valid, frame.K, grid).reshape(-1, 3)[idx] @ R.T
    lat = frame.latents.reshape(C, -1).T[idx]  # (M, C)
    level: Tensor | int = 0
    if config.has_near_level:  # cells seen nearer than near_depth_m: the finer level 1
        level = (pts_cam[:, 2] < config.near_depth_m).to(torch.int64)
        coarse, near = config.level_sizes_m()
        size = torch.where(level > 0, near, coarse).to(torch.float32)[:, None]
        ijk, in_range = voxel_coords(pts, size)
    else:
        ijk, in_range = voxel_coords(pts, config.voxel_size_m)
    # one row per cell: latents | position | normal | 1 (the count), summed per voxel at once
    feats = torch.cat([lat, pts, nrm, torch.ones_like(pts[:, :1])], dim=1)
    if not bool(in_range.all()):
        keep = torch.nonzero(in_range).squeeze(1)
        feats, ijk = feats[keep], ijk[keep]
        level = level[keep] if isinstance(level, Tensor) else level
    keys = pack_keys(ijk, level)
    ukeys, inv = torch.unique(keys, sorted=True, return_inverse=True)
    sums = feats.new_zeros(int(ukeys.numel()), C + 7).index_add_(0, inv, feats)
    return FrameCells(ukeys, sums, int(keys.numel()))


def carve_mask(positions_m: Tensor, frame: Frame, config: MemoryConfig) -> Tensor:
    """Which stored voxel positions (N, 3) this frame's depth rays see through -> (N,) bool.

    A voxel is seen through when it projects inside the frame in front of the camera and the
    observed depth there -- the *minimum* over the 2x2 pixels around its sub-pixel
    projection, with any invalid one counting as 0 -- exceeds the voxel's depth by
    ``max(carve_margin_voxels * voxel_size_m, carve_margin_depth_ratio * depth)``. For a voxel
    lying on a surface, the 2x2 support brackets it (one neighbour sees the surface nearer
    than the voxel, one farther), so surfaces at grazing angles and depth edges do not erode.
    """
    h, w = frame.depth_m.shape
    n = positions_m.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=positions_m.device)
    T_cw = invert_pose(frame.T_world_camera).to(torch.float32)
    # (3, N): a 3x3 times 3xN product is 4x faster on CPU than N x 3 times 3x3 (same bits), and
    # each coordinate is a contiguous row
    p = T_cw[:3, :3] @ positions_m.T + T_cw[:3, 3, None]
    z = p[2]
    front = z > config.min_depth_m
    zs = torch.where(front, z, torch.ones_like(z))
    fx, fy, cx, cy = frame.fx_fy_cx_cy  # the same float32 values as frame.K's
    u = fx * p[0] / zs + cx
    v = fy * p[1] / zs + cy
    # the depth test only for the voxels that project into the frame (the others are most of a
    # large memory): the same per-voxel arithmetic, on the few
    seen = torch.nonzero(front & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)).squeeze(1)
    u, v, z = u[seen], v[seen], z[seen]
    # min over the 2x2 pixels around the sub-pixel projection (invalid = 0 = no evidence)
    d = frame.depth_m[None, None]
    if h > 1 and w > 1:
        dmin = -functional.max_pool2d(-d, 2, stride=1)[0, 0]  # (h-1, w-1)
    else:
        dmin = d[0, 0]
    ui = torch.floor(u).clamp(0, dmin.shape[1] - 1).to(torch.int64)
    vi = torch.floor(v).clamp(0, dmin.shape[0] - 1).to(torch.int64)
    d_obs = dmin[vi, ui]
    margin = torch.clamp(
        config.carve_margin_depth_ratio * d_obs,
        min=config.carve_margin_voxels * config.voxel_size_m,
    )
    through = (d_obs > 0) & (d_obs > z + margin)
    mask = torch.zeros(n, dtype=torch.bool, device=positions_m.device)
    mask[seen] = through
    return mask
