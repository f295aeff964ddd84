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


@dataclass
class FrameCells:
    """A frame's valid cells grouped by voxel (U unique voxels, sorted by key).

    keys: (U,) int64; counts: (U,) float32 cells per voxel; latent_sums: (U, C) float32;
    position_sums: (U, 3) float32 world metres; normal_sums: (U, 3) float32, the sum of the
    cells' unit world-frame normals (facing the camera; zero for a cell without one).
    """

    keys: Tensor
    counts: Tensor
    latent_sums: Tensor
    position_sums: Tensor
    normal_sums: Tensor
    num_cells: int


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
    return Frame(
        latents=lat,
        depth_m=d,
        valid=valid,
        K=K.to(device=device, dtype=torch.float32),
        T_world_camera=T_world_camera.to(device=device, dtype=torch.float64),
        stamp_ns=int(stamp_ns),
    )


def cell_normals(depth_m: Tensor, valid: Tensor, K: Tensor) -> Tensor:
    """Camera-frame unit surface normals of a depth grid's cells -> (h, w, 3), zero where unknown.

    The normal of cell (v, u) is the cross product of the differences of its neighbours' points,
    ``P[v, u+1] - P[v, u-1]`` and ``P[v+1, u] - P[v-1, u]`` (on the border the cell itself
    stands in for the missing neighbour: a one-sided difference), turned to face the camera. It
    is unknown (zero) where the cell or one of its neighbours is invalid, and across depth
    edges: where the two neighbours along either axis differ in depth by more than
    ``NORMAL_MAX_DEPTH_STEP`` times the cell's depth.
    """
    P = functional.pad(
        unproject(depth_m.to(torch.float32), K).permute(2, 0, 1)[None], (1, 1, 1, 1), "replicate"
    )[0].permute(1, 2, 0)  # (h + 2, w + 2, 3): the border repeats its cells
    ok = functional.pad(valid[None, None].float(), (1, 1, 1, 1), "replicate")[0, 0] > 0
    z, zc = P[..., 2], P[1:-1, 1:-1, 2]
    gx = P[1:-1, 2:] - P[1:-1, :-2]
    gy = P[2:, 1:-1] - P[:-2, 1:-1]
    good = ok[1:-1, 1:-1] & ok[1:-1, 2:] & ok[1:-1, :-2] & ok[2:, 1:-1] & ok[:-2, 1:-1]
    good &= (z[1:-1, 2:] - z[1:-1, :-2]).abs() <= NORMAL_MAX_DEPTH_STEP * zc
    good &= (z[2:, 1:-1] - z[:-2, 1:-1]).abs() <= NORMAL_MAX_DEPTH_STEP * zc
    n = torch.linalg.cross(gx, gy, dim=-1)
    length = n.norm(dim=-1)
    good &= length > 0
    n = n / length.clamp_min(1e-30)[..., None]
    away = (n * P[1:-1, 1:-1]).sum(dim=-1) > 0  # pointing away from the camera: flip it
    n = torch.where(away[..., None], -n, n)
    return torch.where(good[..., None], n, torch.zeros_like(n))


def frame_cells(frame: Frame, config: MemoryConfig) -> FrameCells:
    """Unproject valid cells, key them by voxel and sum them per voxel (frame-local sort)."""
    C = frame.latents.shape[0]
    # the valid cells' flat indices, found once (every boolean mask index is a device sync)
    idx = torch.nonzero(frame.valid.flatten()).squeeze(1)
    pts_cam = unproject(frame.depth_m, frame.K).reshape(-1, 3)[idx]  # (M, 3)
    R = frame.T_world_camera[:3, :3].to(torch.float32)
    t = frame.T_world_camera[:3, 3].to(torch.float32)
    pts = pts_cam @ R.T + t
    nrm = cell_normals(frame.depth_m, frame.valid, frame.K).reshape(-1, 3)[idx] @ R.T  # (M, 3)
    lat = frame.latents.reshape(C, -1).T[idx]  # (M, C)
    ijk, in_range = voxel_coords(pts, config.voxel_size_m)
    if not bool(in_range.all()):
        keep = torch.nonzero(in_range).squeeze(1)
        pts, nrm, lat, ijk = pts[keep], nrm[keep], lat[keep], ijk[keep]
    keys = pack_keys(ijk)
    ukeys, inv = torch.unique(keys, sorted=True, return_inverse=True)
    U = int(ukeys.numel())
    dev = pts.device
    counts = torch.zeros(U, dtype=torch.float32, device=dev).index_add_(
        0, inv, torch.ones_like(inv, dtype=torch.float32)
    )
    lat_sums = torch.zeros(U, C, dtype=torch.float32, device=dev).index_add_(0, inv, lat)
    pos_sums = torch.zeros(U, 3, dtype=torch.float32, device=dev).index_add_(0, inv, pts)
    nrm_sums = torch.zeros(U, 3, dtype=torch.float32, device=dev).index_add_(0, inv, nrm)
    return FrameCells(ukeys, counts, lat_sums, pos_sums, nrm_sums, int(keys.numel()))


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
    u = frame.K[0, 0] * p[0] / zs + frame.K[0, 2]
    v = frame.K[1, 1] * p[1] / zs + frame.K[1, 2]
    inside = front & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
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
    return inside & (d_obs > 0) & (d_obs > z + margin)
