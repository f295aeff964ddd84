"""The codec's networks and their architecture settings (torch only).

``CodecConfig`` is stored in every weights file; ``Encoder`` and ``Decoder`` are the two fully
convolutional nets that :class:`mirage_ros.core.codec.Codec` wraps (see ``codec.py`` for the
latent grid, the linear paths and the weights files).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from mirage_ros.core.errors import CodecError, ConfigError, ShapeError
from mirage_ros.core.fill import push_pull_fill

__all__ = ["CodecConfig", "ConfidenceHead", "Decoder", "Encoder", "conv_bias"]


@dataclass(frozen=True)
class CodecConfig:
    """Architecture of the codec (stored in every weights file)."""

    latent_channels: int = 16
    """C: latent channels per cell (the memory stores C numbers per voxel)."""
    stride: int = 4
    """s: pixels per latent cell along each axis (a power of two)."""
    encoder_width: int = 48
    """Channels of the encoder's residual body (on the latent grid)."""
    width: int = 48
    """Channels of the decoder body at the latent grid resolution."""
    inner_width: int = 64
    """Channels of the decoder body at 1/2 and 1/4 of the latent grid."""
    head_channels: int = 8
    """Channels of the full-resolution refinement after the pixel shuffle."""
    max_depth_m: float = 10.0
    """Depth normalisation: the decoder sees log(1+d)/log(1+max_depth_m), 0 where unknown."""
    hole_fill: bool = False
    """Fill empty latent cells by push-pull (pyramid) interpolation before decoding."""
    image_fill_blend: float = 0.0
    """In never-seen pixels, blend the decoder's imagination with a fill of the decoded image from
    its covered pixels: 0 = decoder only, 1 = fill only (tuned per weights file on scenes outside
    the evaluation seeds)."""
    image_fill_iterations: int = 0
    """Jacobi sweeps per pyramid level of that fill: 0 = push-pull, > 0 = the multigrid harmonic
    fill (``fill.harmonic_fill``)."""
    offset_input: bool = False
    """The decoder also sees, per latent cell, where its latent sits inside the cell (the
    render's sub-cell ``offset``), so it can place the content with sub-cell accuracy."""
    offset_warp: float = 0.0
    """Shift the decoded image by this times the render's sub-cell offsets (``warp.py``): each
    cell's content goes where its latent sits (0 = off)."""
    confidence_width: int = 0
    """Channels of the confidence head that looks at the final image (0 = no head: the
    decoder's own confidence logit is the confidence)."""
    fine_render: bool = False
    """The decoder also sees the memory rendered at twice the latent resolution, space-to-depth
    on the latent grid (``FINE_CELLS`` sub-cells x (latents, coverage, offsets) per cell): where
    several voxels fall into one cell it gets each of them instead of their blend. Both the
    convolutions and the linear path see it."""

    def __post_init__(self) -> None:
        ints = {
            "latent_channels": self.latent_channels,
            "encoder_width": self.encoder_width,
            "width": self.width,
            "inner_width": self.inner_width,
            "head_channels": self.head_channels,
        }
        for name, value in ints.items():
            if not isinstance(value, int) or not 1 <= value <= 1024:
                raise ConfigError(f"CodecConfig.{name} must be an int in [1, 1024], got {value!r}")
        if self.stride not in (1, 2, 4, 8, 16):
            raise ConfigError(f"CodecConfig.stride must be 1, 2, 4, 8 or 16, got {self.stride!r}")
        if not (math.isfinite(self.max_depth_m) and self.max_depth_m > 0):
            raise ConfigError(f"CodecConfig.max_depth_m must be > 0, got {self.max_depth_m!r}")
        if not isinstance(self.offset_input, bool):
            raise ConfigError(
                f"CodecConfig.offset_input must be true or false, got {self.offset_input!r}"
            )
        if not (isinstance(self.offset_warp, (int, float)) and 0.0 <= self.offset_warp <= 4.0):
            raise ConfigError(
                f"CodecConfig.offset_warp must be in [0, 4], got {self.offset_warp!r}"
            )
        if not isinstance(self.fine_render, bool):
            raise ConfigError(
                f"CodecConfig.fine_render must be true or false, got {self.fine_render!r}"
            )
        cw = self.confidence_width
        if isinstance(cw, bool) or not isinstance(cw, int) or not 0 <= cw <= 256:
            raise ConfigError(
                f"CodecConfig.confidence_width must be an int in [0, 256], got {cw!r}"
            )
        its = self.image_fill_iterations
        if not isinstance(its, int) or not 0 <= its <= 1000:
            raise ConfigError(
                f"CodecConfig.image_fill_iterations must be an int in [0, 1000], got {its!r}"
            )
        if not 0.0 <= self.image_fill_blend <= 1.0:
            raise ConfigError(
                f"CodecConfig.image_fill_blend must be in [0, 1], got {self.image_fill_blend!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CodecError(f"unknown codec architecture fields {unknown}")
        try:
            return cls(**data)
        except (TypeError, ConfigError) as exc:
            raise CodecError(f"invalid codec architecture: {exc}") from exc


def conv_bias(layer: nn.Conv2d) -> Tensor:
    assert layer.bias is not None
    return layer.bias


class _ResBlock(nn.Module):
    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.conv2(F.gelu(self.conv1(x)))
        return out


class Encoder(nn.Module):
    """rgb (B,3,H,W) in [0,1], H and W multiples of s -> latents (B,C,H/s,W/s)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        patch = 3 * cfg.stride * cfg.stride
        self.stride = cfg.stride
        self.linear = nn.Conv2d(patch, cfg.latent_channels, 1)
        self.body_in = nn.Conv2d(patch, cfg.encoder_width, 3, padding=1)
        self.body = _ResBlock(cfg.encoder_width)
        self.body_out = nn.Conv2d(cfg.encoder_width, cfg.latent_channels, 1)
        nn.init.zeros_(self.body_out.weight)
        nn.init.zeros_(conv_bias(self.body_out))

    def forward(self, rgb: Tensor) -> Tensor:
        x = F.pixel_unshuffle(rgb, self.stride)
        out: Tensor = self.linear(x) + self.body_out(self.body(F.gelu(self.body_in(x))))
        return out


FINE_CELLS = 4
"""Sub-cells per latent cell of the fine render (2 x 2)."""


def fine_channels(latent_channels: int) -> int:
    """Channels of the fine-render input: per sub-cell the latents, coverage and 2 offsets."""
    return FINE_CELLS * (latent_channels + 3)


def fine_features(latents: Tensor, coverage: Tensor, offset: Tensor) -> Tensor:
    """A render at twice the latent resolution -> the decoder's fine input on the latent grid.

    latents (B,C,2h,2w), coverage (B,2h,2w) bool, offset (B,2,2h,2w) (in fine pixels) ->
    (B, 4*(C+3), h, w): the space-to-depth of [latents, coverage, offset], 0 where not covered.
    """
    if latents.ndim != 4 or latents.shape[-2] % 2 or latents.shape[-1] % 2:
        raise ShapeError(f"fine render must be (B,C,2h,2w), got {tuple(latents.shape)}")
    cov = coverage[:, None].to(torch.float32)
    z = torch.nan_to_num(latents.to(torch.float32)) * cov
    off = torch.nan_to_num(offset.to(torch.float32)).clamp(-4.0, 4.0) * cov
    return F.pixel_unshuffle(torch.cat([z, cov, off], dim=1), 2)


class Decoder(nn.Module):
    """latents + coverage + depth (+ sub-cell offsets) on the latent grid (sizes multiples of 4)
    -> rgb, conf logits."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        c, w, iw, s = cfg.latent_channels, cfg.width, cfg.inner_width, cfg.stride
        self.stride = s
        self.hole_fill = cfg.hole_fill
        self.offset_input = cfg.offset_input
        self.fine_render = cfg.fine_render
        n_fine = fine_channels(c) if cfg.fine_render else 0
        # transpose of the encoder's linear path; the fine render feeds it too (sub-cell detail
        # reaches the pixels without passing through the convolutions)
        self.linear = nn.Conv2d(c + n_fine, 3 * s * s, 1)
        n_in = c + (4 if cfg.offset_input else 2) + n_fine
        self.inp = nn.Conv2d(n_in, w, 3, padding=1)
        self.down1 = nn.Conv2d(w, iw, 3, stride=2, padding=1)
        self.block1 = _ResBlock(iw)
        self.down2 = nn.Conv2d(iw, iw, 3, stride=2, padding=1)
        self.block2a = _ResBlock(iw, dilation=2)
        self.block2b = _ResBlock(iw, dilation=4)
        self.context = nn.Linear(iw, iw)
        self.up2 = nn.Conv2d(iw, iw, 1)
        self.up1 = nn.Conv2d(iw, w, 1)
        self.block0 = _ResBlock(w)
        self.head = nn.Conv2d(w, cfg.head_channels * s * s, 1)
        hc = cfg.head_channels
        self.refine1 = nn.Conv2d(hc, hc, 3, padding=1)
        self.refine2 = nn.Conv2d(hc, 4, 3, padding=1)
        nn.init.zeros_(self.refine2.weight)
        nn.init.zeros_(conv_bias(self.refine2))

    def forward(
        self,
        latents: Tensor,
        coverage: Tensor,
        depth_feat: Tensor,
        offset: Tensor | None = None,
        fine: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        cov = coverage.to(latents.dtype)
        z = latents * cov
        if self.hole_fill:
            z = push_pull_fill(z, cov)
        extra: list[Tensor] = []  # the fine render feeds both paths
        if self.fine_render:
            n = fine_channels(z.shape[1])
            extra.append(fine if fine is not None else z.new_zeros(z.shape[0], n, *z.shape[2:]))
        base = F.pixel_shuffle(self.linear(torch.cat([z, *extra], dim=1)), self.stride)
        if not self.hole_fill:
            base = base * F.interpolate(cov, scale_factor=self.stride, mode="nearest")
        feats = [z, cov, depth_feat]
        if self.offset_input:
            feats.append(offset if offset is not None else torch.zeros_like(z[:, :2]))
        feats += extra
        x0 = F.gelu(self.inp(torch.cat(feats, dim=1)))
        x1 = self.block1(F.gelu(self.down1(x0)))
        x2 = F.gelu(self.down2(x1))
        # masked global context: mean of features over covered cells, broadcast everywhere
        cov2 = F.adaptive_max_pool2d(cov, x2.shape[-2:])
        denom = cov2.sum(dim=(2, 3)).clamp_min(1.0)
        ctx = (x2 * cov2).sum(dim=(2, 3)) / denom
        x2 = x2 + self.context(ctx)[:, :, None, None]
        x2 = self.block2b(self.block2a(x2))
        x1 = x1 + self.up2(F.interpolate(x2, size=x1.shape[-2:], mode="nearest"))
        x0 = x0 + self.up1(F.interpolate(F.gelu(x1), size=x0.shape[-2:], mode="nearest"))
        x0 = self.block0(x0)
        h = F.pixel_shuffle(self.head(F.gelu(x0)), self.stride)
        out = self.refine2(F.gelu(self.refine1(F.gelu(h))))
        rgb = base + out[:, :3]
        return rgb, out[:, 3:4]


def _box(x: Tensor, size: int) -> Tensor:
    """Mean over a size x size window (replicated borders), same shape as x (separable)."""
    half = size // 2
    x = F.avg_pool2d(F.pad(x, (half, half, 0, 0), mode="replicate"), (1, size), 1)
    return F.avg_pool2d(F.pad(x, (0, 0, half, half), mode="replicate"), (size, 1), 1)


class ConfidenceHead(nn.Module):
    """Refines the decoder's confidence logit from what the final image looks like.

    The decoder predicts its confidence before the image exists; most of the error that is left
    in covered pixels sits on edges and texture of the *output* (a sub-cell misregistration costs
    nothing on a flat wall and a lot on a brick pattern). This head sees, per pixel: the
    decoder's logit, the output's luminance and gradient magnitude (central differences), the
    coverage and the depth feature, all averaged to half resolution, plus local means of the
    gradient and of the coverage (nearness to never-seen pixels); two 3 x 3 convolutions (the
    second dilated) at half resolution give a correction that is upsampled and added to the
    logit. The last layer starts at zero, so an untrained head returns the decoder's logit.
    """

    n_features = 7

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        w = cfg.confidence_width
        self.conv1 = nn.Conv2d(self.n_features, w, 3, padding=1)
        self.conv2 = nn.Conv2d(w, w, 3, padding=2, dilation=2)
        self.out = nn.Conv2d(w, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(conv_bias(self.out))

    @staticmethod
    def features(rgb: Tensor, logit: Tensor, coverage: Tensor, depth_feat: Tensor) -> Tensor:
        """(B,7,ceil(H/2),ceil(W/2)) inputs of the head; arguments (B,*,H,W) at full resolution."""
        lum = rgb.mean(dim=1, keepdim=True)
        p = F.pad(lum, (1, 1, 1, 1), mode="replicate")
        gx = p[..., 1:-1, 2:] - p[..., 1:-1, :-2]
        gy = p[..., 2:, 1:-1] - p[..., :-2, 1:-1]
        grad = torch.sqrt(gx * gx + gy * gy + 1e-6)
        full = torch.cat([logit / 4, lum - 0.5, 4 * grad, coverage, depth_feat], dim=1)
        half = F.avg_pool2d(full, 2, ceil_mode=True)
        return torch.cat([half, _box(half[:, 2:4], 3)], dim=1)

    def forward(self, rgb: Tensor, logit: Tensor, coverage: Tensor, depth_feat: Tensor) -> Tensor:
        """rgb (B,3,H,W) final image in [0,1]; logit, coverage, depth_feat (B,1,H,W) -> logit."""
        x = self.features(rgb, logit, coverage, depth_feat)
        corr = self.out(F.gelu(self.conv2(F.gelu(self.conv1(x)))))
        corr = F.interpolate(corr, size=logit.shape[-2:], mode="bilinear", align_corners=False)
        out: Tensor = logit + corr
        return out
