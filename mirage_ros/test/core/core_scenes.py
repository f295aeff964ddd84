"""Tiny analytic worlds for the core tests: a box room and solid boxes, ray-cast exactly."""

from __future__ import annotations

import torch
from torch import Tensor

Box = tuple[tuple[float, float, float], tuple[float, float, float]]


def intrinsics(h: int, w: int, f: float) -> Tensor:
    """K (3, 3) float64 with the principal point at the image centre."""
    return torch.tensor(
        [[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )


def look_at(eye: tuple[float, float, float], target: tuple[float, float, float]) -> Tensor:
    """T_world_camera (4, 4) float64 of an optical camera at eye looking at target (z up)."""
    e = torch.tensor(eye, dtype=torch.float64)
    z = torch.tensor(target, dtype=torch.float64) - e
    z = z / z.norm()
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    x = torch.linalg.cross(z, up)
    if float(x.norm()) < 1e-9:
        x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, e
    return T


def raycast(
    K: Tensor, T: Tensor, h: int, w: int, boxes: list[Box] = (), room: Box | None = None
) -> Tensor:
    """z-depth (h, w) float64 of solid boxes and the inside of a room box (inf = no hit)."""
    u = torch.arange(w, dtype=torch.float64)
    v = torch.arange(h, dtype=torch.float64)
    dc = torch.stack(
        [
            ((u[None, :] - K[0, 2]) / K[0, 0]).expand(h, w),
            ((v[:, None] - K[1, 2]) / K[1, 1]).expand(h, w),
            torch.ones(h, w, dtype=torch.float64),
        ],
        dim=-1,
    )
    d = dc @ T[:3, :3].T
    o = T[:3, 3]
    depth = torch.full((h, w), float("inf"), dtype=torch.float64)
    with torch.no_grad():
        inv = 1.0 / torch.where(d == 0, torch.full_like(d, 1e-30), d)
        for lo, hi, solid in [(b[0], b[1], True) for b in boxes] + (
            [(room[0], room[1], False)] if room is not None else []
        ):
            t1 = (torch.tensor(lo, dtype=torch.float64) - o) * inv
            t2 = (torch.tensor(hi, dtype=torch.float64) - o) * inv
            tmin = torch.minimum(t1, t2).amax(dim=-1)
            tmax = torch.maximum(t1, t2).amin(dim=-1)
            if solid:
                t = torch.where(
                    (tmax >= tmin) & (tmin > 0), tmin, torch.full_like(tmin, float("inf"))
                )
            else:
                t = torch.where(tmax > 0, tmax, torch.full_like(tmax, float("inf")))
            depth = torch.minimum(depth, t)
    return depth


def surface_latents(depth: Tensor, K: Tensor, T: Tensor, channels: int, seed: int = 0) -> Tensor:
    """Latents (C, h, w) float32 that are a smooth function of the world point seen."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(3, channels, generator=g, dtype=torch.float64) * 2.0
    b = torch.rand(channels, generator=g, dtype=torch.float64) * 6.28
    h, w = depth.shape
    u = torch.arange(w, dtype=torch.float64)
    v = torch.arange(h, dtype=torch.float64)
    z = torch.nan_to_num(depth, posinf=0.0)
    pc = torch.stack(
        [(u[None, :] - K[0, 2]) / K[0, 0] * z, (v[:, None] - K[1, 2]) / K[1, 1] * z, z], dim=-1
    )
    pw = pc @ T[:3, :3].T + T[:3, 3]
    return torch.sin(pw @ A + b).permute(2, 0, 1).to(torch.float32).contiguous()
