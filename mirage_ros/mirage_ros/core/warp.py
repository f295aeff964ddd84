"""Sub-cell placement of a decoded image: move each cell's content to where its latent sits.

The decoder paints the content of latent cell (i, j) around that cell's centre, but the memory
rendered into the cell a voxel whose surface point projects ``offset`` cells away from the centre
(``RenderResult.offset``: up to half a cell with nearest-pixel splatting, less when blending).
On a textured surface that misregistration of up to two pixels costs more PSNR than any other
part of the memory path. :func:`subcell_warp` shifts the decoded image by the offset field,
upsampled bilinearly to pixels: ``out(x) = image(x - gain * stride * offset(x))`` (bilinear,
borders replicated). ``subcell_warp_reference`` is the slow per-pixel version it is tested
against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from mirage_ros.core.errors import ShapeError

__all__ = ["offset_field_px", "subcell_warp", "subcell_warp_reference"]


def offset_field_px(offset: Tensor, stride: int, gain: float) -> Tensor:
    """Cell offsets (B,2,h,w) -> a pixel displacement field (B,2,h*s,w*s), bilinear
    (``align_corners=False``: each cell's value sits at its centre), scaled by ``gain * s``."""
    h, w = offset.shape[-2:]
    up = F.interpolate(offset, size=(h * stride, w * stride), mode="bilinear", align_corners=False)
    return up * (gain * stride)


def subcell_warp(image: Tensor, offset: Tensor, stride: int, gain: float = 1.0) -> Tensor:
    """image (B,C,h*s,w*s), offset (B,2,h,w) in cells (0 where nothing was rendered) ->
    image sampled at ``x - gain * s * offset(x)`` (bilinear, replicated borders)."""
    b, _, hs, ws = image.shape
    if (
        offset.ndim != 4
        or offset.shape[:2] != (b, 2)
        or offset.shape[-2:]
        != (
            hs // stride,
            ws // stride,
        )
    ):
        raise ShapeError(f"offset {tuple(offset.shape)} does not fit image {tuple(image.shape)}")
    d = offset_field_px(offset.to(image.dtype), stride, gain)
    ys = torch.arange(hs, device=image.device, dtype=image.dtype)
    xs = torch.arange(ws, device=image.device, dtype=image.dtype)
    sx = xs[None, None, :] - d[:, 0]  # (B, hs, ws)
    sy = ys[None, :, None] - d[:, 1]
    grid = torch.stack([(2 * sx + 1) / ws - 1, (2 * sy + 1) / hs - 1], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def subcell_warp_reference(image: Tensor, offset: Tensor, stride: int, gain: float = 1.0) -> Tensor:
    """Slow obvious version of :func:`subcell_warp`: per pixel, interpolate the offset of the
    four nearest cell centres, then the image at the displaced position (clamped to the
    image)."""
    b, _, hs, ws = image.shape
    h, w = offset.shape[-2:]
    img = image.double()
    off = offset.double()
    out = torch.zeros_like(img)

    def lerp_weights(x: float, n: int) -> tuple[int, int, float]:
        x = min(max(x, 0.0), n - 1.0)
        i0 = min(math.floor(x), n - 1)
        i1 = min(i0 + 1, n - 1)
        return i0, i1, x - i0

    for bi in range(b):
        for y in range(hs):
            cy0, cy1, fy = lerp_weights((y + 0.5) / stride - 0.5, h)
            for x in range(ws):
                cx0, cx1, fx = lerp_weights((x + 0.5) / stride - 0.5, w)
                o = (
                    off[bi, :, cy0, cx0] * (1 - fy) * (1 - fx)
                    + off[bi, :, cy0, cx1] * (1 - fy) * fx
                    + off[bi, :, cy1, cx0] * fy * (1 - fx)
                    + off[bi, :, cy1, cx1] * fy * fx
                )
                px0, px1, gx = lerp_weights(x - gain * stride * float(o[0]), ws)
                py0, py1, gy = lerp_weights(y - gain * stride * float(o[1]), hs)
                out[bi, :, y, x] = (
                    img[bi, :, py0, px0] * (1 - gy) * (1 - gx)
                    + img[bi, :, py0, px1] * (1 - gy) * gx
                    + img[bi, :, py1, px0] * gy * (1 - gx)
                    + img[bi, :, py1, px1] * gy * gx
                )
    return out.to(image.dtype)
