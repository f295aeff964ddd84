"""Losses and image metrics for codec training and evaluation (torch only)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

__all__ = [
    "confidence_loss",
    "confidence_target",
    "masked_psnr",
    "reconstruction_loss",
    "spearman",
    "ssim_map",
]

_C1 = 0.01**2
_C2 = 0.03**2


def ssim_map(x: Tensor, y: Tensor, window: int = 7) -> Tensor:
    """Per-pixel SSIM with a box window. x, y: (B,3,H,W) -> (B,1,H,W) (channel mean)."""
    pad = window // 2
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    yp = F.pad(y, (pad, pad, pad, pad), mode="replicate")
    mx, my = F.avg_pool2d(xp, window, 1), F.avg_pool2d(yp, window, 1)
    sxx = F.avg_pool2d(xp * xp, window, 1) - mx * mx
    syy = F.avg_pool2d(yp * yp, window, 1) - my * my
    sxy = F.avg_pool2d(xp * yp, window, 1) - mx * my
    num = (2 * mx * my + _C1) * (2 * sxy + _C2)
    den = (mx * mx + my * my + _C1) * (sxx + syy + _C2)
    return (num / den).mean(dim=1, keepdim=True)


def confidence_target(abs_err: Tensor, tau: float) -> Tensor:
    """What the confidence head learns: exp(-err/tau) of the locally averaged abs error.

    abs_err: (B,1,H,W) per-pixel channel-mean |rgb - target| (no gradient) -> (B,1,H,W) in (0,1].
    """
    smooth = F.avg_pool2d(F.pad(abs_err, (1, 1, 1, 1), mode="replicate"), 3, 1)
    return torch.exp(-smooth / tau)


def reconstruction_loss(
    rgb: Tensor,
    conf_logit: Tensor,
    target: Tensor,
    covered: Tensor,
    hole_weight: float = 0.5,
    ssim_weight: float = 0.5,
    conf_weight: float = 0.1,
    tau: float = 0.05,
) -> tuple[Tensor, dict[str, float]]:
    """L1 + (1-SSIM) weighted towards covered pixels, plus the confidence BCE.

    rgb: (B,3,H,W) unclamped decoder output; conf_logit: (B,1,H,W); target: (B,3,H,W) in [0,1];
    covered: (B,1,H,W) bool (memory coverage at full resolution).
    """
    l1 = (rgb - target).abs().mean(dim=1, keepdim=True)
    dssim = 1.0 - ssim_map(rgb, target)
    weight = torch.where(covered, 1.0, hole_weight).to(rgb.dtype)
    photo = ((l1 + ssim_weight * dssim) * weight).sum() / weight.sum()
    conf = _confidence_bce(conf_logit, l1, tau)
    loss = photo + conf_weight * conf
    return loss, _info(loss, l1, conf, rgb.clamp(0, 1), target, covered)


def _confidence_bce(conf_logit: Tensor, l1: Tensor, tau: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(conf_logit, confidence_target(l1.detach(), tau))


def _info(
    loss: Tensor, l1: Tensor, conf: Tensor, rgb: Tensor, target: Tensor, covered: Tensor
) -> dict[str, float]:
    """The logged numbers of a step: loss, mean L1, confidence BCE, covered-pixel PSNR."""
    with torch.no_grad():
        mse_cov = masked_mse(rgb, target, covered)
    return {
        "loss": float(loss.detach()),
        "l1": float(l1.mean().detach()),
        "conf_bce": float(conf.detach()),
        "psnr_cov": float(-10.0 * np.log10(max(mse_cov, 1e-10))),
    }


def confidence_loss(
    rgb: Tensor, conf_logit: Tensor, target: Tensor, covered: Tensor, tau: float = 0.05
) -> tuple[Tensor, dict[str, float]]:
    """The confidence BCE alone, against the error of the final image (phase 3).

    rgb: (B,3,H,W) the final image (clamped, never-seen pixels filled; no gradient needed);
    conf_logit: (B,1,H,W); target: (B,3,H,W); covered: (B,1,H,W) bool.
    """
    rgb = rgb.detach()
    l1 = (rgb - target).abs().mean(dim=1, keepdim=True)
    loss = _confidence_bce(conf_logit, l1, tau)
    return loss, _info(loss, l1, loss, rgb, target, covered)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """Mean squared error over the pixels where mask (B,1,H,W) is true (NaN if none)."""
    m = mask.expand_as(pred)
    n = int(m.sum())
    if n == 0:
        return float("nan")
    return float(((pred - target) ** 2)[m].sum() / n)


def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """PSNR (dB, peak 1) over masked pixels; NaN if the mask is empty."""
    mse = masked_mse(pred, target, mask)
    if not np.isfinite(mse):
        return float("nan")
    return float(-10.0 * np.log10(max(mse, 1e-12)))


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    # average ranks of ties
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (ties get average ranks)."""
    ra, rb = _rank(np.asarray(a, dtype=np.float64)), _rank(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")
