"""Filling never-seen cells and pixels from seen ones (torch only, deterministic, O(pixels)).

``push_pull_fill`` is the pyramid fill (coverage-weighted means down, bilinear back up) used on
the latent grid by decoders trained with ``hole_fill`` and, by ``blend_image_fill``, on decoded
images where the codec's ``image_fill_blend`` is set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

__all__ = ["blend_image_fill", "push_pull_fill"]


def push_pull_fill(z: Tensor, cov: Tensor) -> Tensor:
    """Fill uncovered cells of z (B,C,h,w) from covered ones (cov (B,1,h,w) in {0,1}).

    Push: a pyramid of coverage-weighted 2x2 means; pull: from the coarsest level down, each
    level keeps its own mean where it has support and takes the bilinearly upsampled coarser
    value elsewhere. Covered cells are returned unchanged; deterministic, O(h w).
    """
    sums, weights = [z * cov], [cov]
    while min(sums[-1].shape[-2:]) > 1:
        sums.append(F.avg_pool2d(sums[-1], 2, ceil_mode=True))
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))
    filled = sums[-1] / weights[-1].clamp_min(1e-6)
    for lvl in range(len(sums) - 2, -1, -1):
        up = F.interpolate(filled, size=sums[lvl].shape[-2:], mode="bilinear", align_corners=False)
        w = weights[lvl]
        mean = sums[lvl] / w.clamp_min(1e-6)
        a = w.clamp(0.0, 1.0)
        filled = torch.where(w > 0, a * mean + (1 - a) * up, up)
    return torch.where(cov > 0, z, filled)


def blend_image_fill(rgb: Tensor, coverage: Tensor, stride: int, blend: float) -> Tensor:
    """Never-seen pixels of rgb (B,3,H,W) become ``blend * fill + (1 - blend) * rgb``, where the
    fill is :func:`push_pull_fill` of the pixels whose latent cell is covered (coverage (B,h,w)
    on the latent grid). Covered pixels are unchanged."""
    cov = coverage.to(rgb.device)[:, None].float()
    cov_px = F.interpolate(cov, scale_factor=stride, mode="nearest")
    H, W = rgb.shape[-2:]
    if cov_px.shape[-2] < H or cov_px.shape[-1] < W:
        pad = (0, max(0, W - cov_px.shape[-1]), 0, max(0, H - cov_px.shape[-2]))
        cov_px = F.pad(cov_px, pad, mode="replicate")
    cov_px = cov_px[:, :, :H, :W]
    if not bool((cov_px > 0).any()):
        return rgb  # nothing seen: the decoder's imagination is all there is
    filled = push_pull_fill(rgb, cov_px)
    return torch.where(cov_px > 0, rgb, blend * filled + (1.0 - blend) * rgb)
