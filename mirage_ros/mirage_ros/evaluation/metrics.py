"""Image and depth metrics of the evaluation: PSNR, gaussian-window SSIM, depth abs-rel, Spearman.

Images are float arrays in [0, 1], shaped (H, W, 3) or (3, H, W) -- numpy or torch; masks are
(H, W) bool. Every metric returns a Python float, NaN where it is undefined (an empty mask).
``ssim_reference`` is the slow, obvious per-pixel SSIM that the fast convolution is tested
against.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from mirage_ros.core.errors import ShapeError

__all__ = [
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "depth_abs_rel",
    "psnr",
    "spearman",
    "ssim",
    "ssim_from_map",
    "ssim_map",
    "ssim_reference",
]

SSIM_WINDOW = 11  #: gaussian window side (px), as in Wang et al. 2004
SSIM_SIGMA = 1.5  #: gaussian window sigma (px)
_C1 = 0.01**2  # (K1 * L)^2 with L = 1
_C2 = 0.03**2


def _hwc(image: Any, name: str) -> np.ndarray:
    """(H, W, 3) or (3, H, W) numpy/torch -> (H, W, 3) float64 numpy."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = np.moveaxis(a, 0, -1)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ShapeError(f"{name} must be (H, W, 3) or (3, H, W), got {a.shape}")
    return a.astype(np.float64)


def _pair(pred: Any, real: Any, mask: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, r = _hwc(pred, "pred"), _hwc(real, "real")
    if p.shape != r.shape:
        raise ShapeError(f"pred {p.shape} and real {r.shape} differ in shape")
    m = np.ones(p.shape[:2], dtype=bool) if mask is None else _mask(mask, p.shape[:2])
    return p, r, m


def _mask(mask: Any, hw: tuple[int, ...]) -> np.ndarray:
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.shape != hw:
        raise ShapeError(f"mask {m.shape} does not match image {hw}")
    return m.astype(bool)


def psnr(pred: Any, real: Any, mask: Any | None = None) -> float:
    """PSNR in dB of images in [0, 1] over all pixels or the pixels of ``mask`` (NaN if empty).

    A perfect match is capped at 100 dB so that means over frames stay finite.
    """
    p, r, m = _pair(pred, real, mask)
    if not m.any():
        return float("nan")
    mse = float(np.mean((p[m] - r[m]) ** 2))
    return 100.0 if mse <= 1e-10 else -10.0 * math.log10(mse)


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - SSIM_WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def ssim_map(pred: Any, real: Any) -> np.ndarray:
    """Per-pixel SSIM (H, W) float64, mean over the 3 channels; gaussian window 11, sigma 1.5.

    Local statistics use reflect padding at the borders (as scikit-image does), so the map has
    the image's size; images smaller than the window are padded by replication instead. The
    five local moments are blurred in one separable float32 convolution.
    """
    p, r, _ = _pair(pred, real, None)
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(p, -1, 0), dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(np.moveaxis(r, -1, 0), dtype=np.float32))
    g = _gaussian_1d(x.device).to(torch.float32)
    half = SSIM_WINDOW // 2
    h, w = x.shape[-2:]
    mode = "reflect" if min(h, w) > half else "replicate"
    stack = torch.cat([x, y, x * x, y * y, x * y])[None]  # (1, 15, H, W)
    n = stack.shape[1]
    t = F.pad(stack, (half, half, half, half), mode=mode)
    t = F.conv2d(t, g.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)
    t = F.conv2d(t, g.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)[0].double()
    mx, my, exx, eyy, exy = t[0:3], t[3:6], t[6:9], t[9:12], t[12:15]
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    num = (2 * mx * my + _C1) * (2 * sxy + _C2)
    den = (mx * mx + my * my + _C1) * (sxx + syy + _C2)
    return (num / den).mean(dim=0).numpy()


def ssim_from_map(smap: np.ndarray, mask: Any | None = None) -> float:
    """Mean of an :func:`ssim_map`. Without a mask: over the interior (borders of half a window
    cropped, as scikit-image's ``structural_similarity``; the whole map if too small); with a
    mask: over the masked pixels (NaN if empty)."""
    if mask is not None:
        m = _mask(mask, smap.shape)
        return float(smap[m].mean()) if m.any() else float("nan")
    half = SSIM_WINDOW // 2
    inner = smap[half:-half, half:-half]
    return float(inner.mean() if inner.size else smap.mean())


def ssim(pred: Any, real: Any, mask: Any | None = None) -> float:
    """Mean SSIM of pred vs real, over the interior or the pixels of ``mask``
    (see :func:`ssim_from_map`)."""
    return ssim_from_map(ssim_map(pred, real), mask)


def ssim_reference(pred: Any, real: Any) -> np.ndarray:
    """Slow per-pixel SSIM map (loops over pixels and channels); agrees with :func:`ssim_map`."""
    p, r, _ = _pair(pred, real, None)
    h, w = p.shape[:2]
    half = SSIM_WINDOW // 2
    g = _gaussian_1d(torch.device("cpu")).numpy()
    win = np.outer(g, g)
    pad = ((half, half), (half, half), (0, 0))
    small = min(h, w) <= half
    pp = np.pad(p, pad, mode="edge") if small else np.pad(p, pad, mode="reflect")
    rp = np.pad(r, pad, mode="edge") if small else np.pad(r, pad, mode="reflect")
    out = np.zeros((h, w), dtype=np.float64)
    for i in range(h):
        for j in range(w):
            total = 0.0
            for c in range(3):
                a = pp[i : i + SSIM_WINDOW, j : j + SSIM_WINDOW, c]
                b = rp[i : i + SSIM_WINDOW, j : j + SSIM_WINDOW, c]
                ma, mb = float((win * a).sum()), float((win * b).sum())
                va = float((win * a * a).sum()) - ma * ma
                vb = float((win * b * b).sum()) - mb * mb
                cov = float((win * a * b).sum()) - ma * mb
                total += ((2 * ma * mb + _C1) * (2 * cov + _C2)) / (
                    (ma * ma + mb * mb + _C1) * (va + vb + _C2)
                )
            out[i, j] = total / 3.0
    return out


def depth_abs_rel(pred_m: Any, real_m: Any) -> float:
    """Mean |pred - real| / real over pixels where both depths are finite and > 0 (NaN if none).

    pred_m, real_m: (H, W) metres; NaN/inf/0 mark unknown depth.
    """
    p = pred_m.detach().cpu().numpy() if isinstance(pred_m, torch.Tensor) else np.asarray(pred_m)
    r = real_m.detach().cpu().numpy() if isinstance(real_m, torch.Tensor) else np.asarray(real_m)
    if p.shape != r.shape or p.ndim != 2:
        raise ShapeError(f"depths must both be (H, W), got {p.shape} and {r.shape}")
    p, r = p.astype(np.float64), r.astype(np.float64)
    ok = np.isfinite(p) & np.isfinite(r) & (p > 0) & (r > 0)
    if not ok.any():
        return float("nan")
    return float(np.mean(np.abs(p[ok] - r[ok]) / r[ok]))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties given their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation of two equal-length 1-D samples (NaN if fewer than 2 values or
    either is constant). Used for confidence vs. error: a useful confidence ranks low where
    the error is high."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ShapeError(f"spearman needs equal lengths, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 0 else float("nan")
