"""Pinhole camera geometry in torch (optical frames: z forward, x right, y down).

Pixel convention: pixel (row v, column u) has its centre at integer coordinates (u, v), so a
point projects to pixel ``round(u), round(v)``. Intrinsics K are the usual
``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (skew is not supported and refused).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mirage_ros.core.errors import PoseError, ShapeError

__all__ = [
    "depth_at_stride",
    "invert_pose",
    "project",
    "scale_intrinsics",
    "transform_points",
    "unproject",
    "valid_depth_mask",
    "validate_intrinsics",
    "validate_pose",
]

_ROT_TOL = 1e-3


def validate_intrinsics(K: Tensor) -> Tensor:
    """Check K: (3, 3) or (B, 3, 3), finite, fx, fy > 0, zero skew, last row [0, 0, 1].

    Returns K unchanged; raises :class:`ShapeError` otherwise.
    """
    if not isinstance(K, Tensor):
        raise ShapeError(f"K must be a torch.Tensor, got {type(K).__name__}")
    if K.dim() not in (2, 3) or tuple(K.shape[-2:]) != (3, 3):
        raise ShapeError(f"K must be (3, 3) or (B, 3, 3), got {tuple(K.shape)}")
    if K.is_complex() or not (K.is_floating_point() or K.dtype in (torch.int32, torch.int64)):
        raise ShapeError(f"K must be real-valued, got dtype {K.dtype}")
    # checked in numpy: a few 3x3 values, and a dozen torch calls would cost more than the check
    Kd = K.detach().to(device="cpu", dtype=torch.float64).reshape(-1, 3, 3).numpy()
    if not np.isfinite(Kd).all():
        raise ShapeError("K contains NaN or inf")
    if (Kd[:, 0, 0] <= 0).any() or (Kd[:, 1, 1] <= 0).any():
        raise ShapeError("K must have fx > 0 and fy > 0")
    if (Kd[:, 0, 1] != 0).any() or (Kd[:, 1, 0] != 0).any():
        raise ShapeError("K must have zero skew (K[0,1] == K[1,0] == 0)")
    if not (Kd[:, 2, :] == (0.0, 0.0, 1.0)).all():
        raise ShapeError("K's last row must be [0, 0, 1]")
    return K


def validate_pose(T_world_camera: Tensor) -> Tensor:
    """Check a rigid transform: (4, 4) or (B, 4, 4), finite, orthonormal R with det +1.

    Returns the input unchanged; raises :class:`ShapeError` (shape) or :class:`PoseError`.
    """
    T = T_world_camera
    if not isinstance(T, Tensor):
        raise ShapeError(f"T_world_camera must be a torch.Tensor, got {type(T).__name__}")
    if T.dim() not in (2, 3) or tuple(T.shape[-2:]) != (4, 4):
        raise ShapeError(f"T_world_camera must be (4, 4) or (B, 4, 4), got {tuple(T.shape)}")
    if T.is_complex() or not T.is_floating_point():
        raise ShapeError(f"T_world_camera must be floating point, got {T.dtype}")
    Td = T.detach().to(device="cpu", dtype=torch.float64).reshape(-1, 4, 4).numpy()  # as in K
    if not np.isfinite(Td).all():
        raise PoseError("T_world_camera contains NaN or inf")
    if not (np.abs(Td[:, 3, :] - (0.0, 0.0, 0.0, 1.0)) <= 1e-9).all():
        raise PoseError("T_world_camera's last row must be [0, 0, 0, 1]")
    R = Td[:, :3, :3]
    err = float(np.abs(R @ R.transpose(0, 2, 1) - np.eye(3)).max(initial=0.0))
    if err > _ROT_TOL:
        raise PoseError(f"T_world_camera's rotation is not orthonormal (error {err:.2e})")
    if (np.linalg.det(R) <= 0).any():
        raise PoseError("T_world_camera's rotation has det <= 0 (a reflection)")
    return T


def invert_pose(T: Tensor) -> Tensor:
    """Inverse of rigid transforms (..., 4, 4): [R t] -> [R^T, -R^T t]."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -(Rt @ t)
    out[..., 3, 3] = 1.0
    return out


def scale_intrinsics(K: Tensor, sx: float, sy: float) -> Tensor:
    """Intrinsics of an image resized by (sx, sy), pixel-centre correct.

    ``fx' = fx sx``, ``cx' = (cx + 0.5) sx - 0.5`` (and the same for y). K: (3, 3) or (B, 3, 3).
    """
    validate_intrinsics(K)
    if not (sx > 0 and sy > 0):
        raise ShapeError(f"scale factors must be > 0, got ({sx}, {sy})")
    out = K.clone().to(torch.promote_types(K.dtype, torch.float32))
    out[..., 0, 0] = K[..., 0, 0] * sx
    out[..., 1, 1] = K[..., 1, 1] * sy
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return out


def valid_depth_mask(depth_m: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """Bool mask of valid depths: finite and within [min_depth_m, max_depth_m]."""
    return torch.isfinite(depth_m) & (depth_m >= min_depth_m) & (depth_m <= max_depth_m)


def depth_at_stride(depth_m: Tensor, stride: int) -> Tensor:
    """Depth on the latent grid of a stride-``stride`` encoder.

    depth_m: (H, W) metres (0/NaN/inf = invalid) -> (H // stride, W // stride) float32.
    Latent cell (i, j) covers full-resolution pixels ``[i s, (i+1) s) x [j s, (j+1) s)``, whose
    centre is ``(j + 0.5) s - 0.5`` -- exactly the cell centre that
    ``scale_intrinsics(K, 1/s, 1/s)`` assigns. The cell's depth is the (lower) median of the
    valid pixels of that block, 0 where the block has none. Rows/columns beyond a multiple of
    the stride are dropped.
    """
    if not isinstance(depth_m, Tensor) or depth_m.dim() != 2:
        raise ShapeError(f"depth_m must be a (H, W) tensor, got {getattr(depth_m, 'shape', None)}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ShapeError(f"stride must be a positive integer, got {stride!r}")
    H, W = depth_m.shape
    h, w = H // stride, W // stride
    if h == 0 or w == 0:
        raise ShapeError(f"depth {H}x{W} is smaller than one {stride}x{stride} block")
    d = depth_m[: h * stride, : w * stride].to(torch.float32)
    d = torch.where(torch.isfinite(d) & (d > 0), d, torch.full_like(d, float("nan")))
    if stride == 1:
        return torch.nan_to_num(d, nan=0.0)
    blocks = d.reshape(h, stride, w, stride).permute(0, 2, 1, 3).reshape(h, w, stride * stride)
    med = torch.nanmedian(blocks, dim=-1).values
    return torch.nan_to_num(med, nan=0.0)


def unproject(depth_m: Tensor, K: Tensor) -> Tensor:
    """Camera-frame points of every pixel: depth (h, w), K (3, 3) -> (h, w, 3) (z = depth)."""
    if depth_m.dim() != 2:
        raise ShapeError(f"depth_m must be (h, w), got {tuple(depth_m.shape)}")
    h, w = depth_m.shape
    dtype = depth_m.dtype if depth_m.is_floating_point() else torch.float32
    Kf = K.to(device=depth_m.device, dtype=dtype)
    u = torch.arange(w, device=depth_m.device, dtype=dtype)
    v = torch.arange(h, device=depth_m.device, dtype=dtype)
    z = depth_m.to(dtype)
    x = (u[None, :] - Kf[0, 2]) / Kf[0, 0] * z
    y = (v[:, None] - Kf[1, 2]) / Kf[1, 1] * z
    return torch.stack([x, y, z], dim=-1)


def transform_points(T: Tensor, points: Tensor) -> Tensor:
    """Apply rigid transform(s) to points.

    T: (4, 4) with points (..., 3), or (B, 4, 4) with points (B, N, 3) -> same shape as points.
    """
    R = T[..., :3, :3].to(points.dtype)
    t = T[..., :3, 3].to(points.dtype)
    if T.dim() == 2:
        return points @ R.T + t
    return points @ R.transpose(-1, -2) + t[:, None, :]


def project(points_camera: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Project camera-frame points: (..., 3), K (3, 3) -> (uv (..., 2), z (...)).

    With batched K (B, 3, 3) the points must be (B, N, 3). uv is NaN-free only where z > 0.
    """
    Kf = K.to(points_camera.dtype)
    z = points_camera[..., 2]
    if Kf.dim() == 3:
        fx, fy = Kf[:, 0, 0, None], Kf[:, 1, 1, None]
        cx, cy = Kf[:, 0, 2, None], Kf[:, 1, 2, None]
    else:
        fx, fy, cx, cy = Kf[0, 0], Kf[1, 1], Kf[0, 2], Kf[1, 2]
    u = fx * points_camera[..., 0] / z + cx
    v = fy * points_camera[..., 1] / z + cy
    return torch.stack([u, v], dim=-1), z
