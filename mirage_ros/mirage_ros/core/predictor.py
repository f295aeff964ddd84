"""Predictor: the codec and the latent spatial memory glued together.

``observe`` encodes a camera frame and integrates its latents into the memory at the latent grid
(depth sampled with ``depth_at_stride``, intrinsics with ``scale_intrinsics``); ``predict``
renders the memory at requested poses on the latent grid (and at twice its resolution for
codecs with ``fine_render``: ``render_for_codec``) and decodes full-resolution images with
a per-pixel confidence. The predictor owns no state beyond the two objects it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mirage_ros.core.codec import Codec
from mirage_ros.core.codec_nets import fine_features
from mirage_ros.core.cuda_graph import GraphedDecode
from mirage_ros.core.errors import CodecError, ShapeError
from mirage_ros.core.fill import upsample_cells
from mirage_ros.core.geometry import depth_at_stride, scale_intrinsics

if TYPE_CHECKING:
    from mirage_ros.core.memory import IntegrateStats, LatentSpatialMemory

__all__ = ["PredictedViews", "Predictor", "render_for_codec", "rgb_to_tensor"]


def render_for_codec(
    codec: Codec, memory: Any, K: Tensor, T_world_camera: Tensor, height: int, width: int
) -> tuple[Any, Tensor | None]:
    """Render what ``codec`` decodes (height x width) views from: ``memory`` (anything with
    ``render(K, T, h, w) -> RenderResult``) on the latent grid and, for codecs with
    ``fine_render``, once more at twice that resolution (its ``fine_features``; else None).

    K: (3,3) or (B,3,3) full-resolution intrinsics; T_world_camera: (4,4) or (B,4,4).
    """
    s = codec.config.stride
    h, w = codec.latent_shape(height, width)
    render = memory.render(scale_intrinsics(K, 1.0 / s, 1.0 / s), T_world_camera, h, w)
    if not codec.config.fine_render:
        return render, None
    r2 = memory.render(
        scale_intrinsics(K, 2.0 / s, 2.0 / s), T_world_camera, 2 * h, 2 * w,
        2 * memory.config.splat_radius_px,  # as far as the coarse splats reach
    )  # fmt: skip
    return render, fine_features(r2.latents, r2.coverage, r2.offset)


@dataclass
class PredictedViews:
    """Predicted camera views (B requested poses)."""

    rgb: Tensor
    """(B,3,H,W) float32 in [0,1]."""
    confidence: Tensor
    """(B,H,W) float32 in [0,1]; low where the decoder imagined the content."""
    depth_m: Tensor
    """(B,H,W) float32 metres, NaN where the memory has no surface."""
    coverage: Tensor
    """(B,H,W) bool: pixels whose latent cell was rendered from the memory."""
    coverage_fraction: list[float]
    """Per view: fraction of latent cells covered by the memory."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Wall times of the stages: render, decode, total."""


def rgb_to_tensor(rgb: Any, device: torch.device | str | None = None) -> Tensor:
    """(H,W,3) uint8 numpy/tensor or (3,H,W) tensor (uint8 or float in [0,1]) -> (3,H,W) float32
    on ``device`` (None = where it is). The image moves before it is converted: a quarter of the
    bytes cross, and the host does no per-pixel work for a GPU."""
    t = torch.from_numpy(np.ascontiguousarray(rgb)) if isinstance(rgb, np.ndarray) else rgb
    if not isinstance(t, Tensor) or t.ndim != 3:
        raise ShapeError(f"rgb must be (H,W,3) or (3,H,W), got {getattr(rgb, 'shape', None)}")
    if device is not None:
        t = t.to(device)
    if t.shape[-1] == 3 and t.shape[0] != 3:
        t = t.permute(2, 0, 1)
    elif t.shape[0] != 3:
        raise ShapeError(f"rgb must be (H,W,3) or (3,H,W), got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if not t.is_floating_point():
        raise ShapeError(f"rgb must be uint8 or float in [0,1], got {t.dtype}")
    return t.float()


def _as_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} is not numeric: {exc}") from exc


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Predictor:
    """Encode -> integrate; render -> decode. ``codec`` and ``memory`` must share C."""

    def __init__(self, codec: Codec, memory: LatentSpatialMemory, cuda_graphs: bool = True) -> None:
        c_codec = codec.config.latent_channels
        c_mem = memory.config.latent_channels
        if c_codec != c_mem:
            raise CodecError(f"codec has {c_codec} latent channels but the memory holds {c_mem}")
        if memory.codec_id not in ("none", "", codec.codec_id):
            raise CodecError(
                f"memory was built with codec {memory.codec_id!r}, not {codec.codec_id!r}"
            )
        memory.codec_id = codec.codec_id
        self.codec = codec.eval()
        self.memory = memory
        self.device = next(codec.parameters()).device
        # on CUDA the decode is replayed from CUDA graphs (same bits, several times faster)
        self._decode: Callable[..., tuple[Tensor, Tensor]] = (
            GraphedDecode(codec) if cuda_graphs and GraphedDecode.usable(codec) else codec.decode
        )

    @torch.inference_mode()
    def encode_frame(self, rgb: Any, depth_m: Any, K: Any) -> tuple[Tensor, Tensor, Tensor]:
        """Latents (C,h,w), depth (h,w) and intrinsics (3,3) of a frame on the latent grid."""
        s = self.codec.config.stride
        # both move to the device first: the conversions and the depth's per-cell median then
        # run there (the same values: a division and a selection), not on the host
        image = rgb_to_tensor(rgb, self.device)
        depth = _as_tensor(depth_m, "depth_m").to(device=self.device, dtype=torch.float32)
        if depth.ndim != 2 or tuple(depth.shape) != tuple(image.shape[1:]):
            raise ShapeError(
                f"depth {tuple(depth.shape)} does not match rgb {tuple(image.shape[1:])}"
            )
        depth_lat = depth_at_stride(depth, s)
        h, w = depth_lat.shape
        latents = self.codec.encode(image[None].to(self.device))[0, :, :h, :w]
        K_lat = scale_intrinsics(_as_tensor(K, "K"), 1.0 / s, 1.0 / s)
        return latents, depth_lat, K_lat

    def observe(
        self, rgb: Any, depth_m: Any, K: Any, T_world_camera: Any, stamp_ns: int
    ) -> IntegrateStats:
        """Integrate one frame. rgb (H,W,3) uint8 or (3,H,W); depth_m (H,W) metres; K (3,3) for
        the full-resolution image; T_world_camera (4,4) optical frame; stamp_ns int."""
        latents, depth_lat, K_lat = self.encode_frame(rgb, depth_m, K)
        T = _as_tensor(T_world_camera, "T_world_camera")
        return self.memory.integrate(latents, depth_lat, K_lat, T, int(stamp_ns))

    @torch.inference_mode()
    def predict(self, K: Any, T_world_camera: Any, height: int, width: int) -> PredictedViews:
        """Predict views. K (3,3) or (B,3,3) full resolution; T_world_camera (4,4) or (B,4,4)."""
        if height < 1 or width < 1:
            raise ShapeError(f"height and width must be >= 1, got {height}x{width}")
        t0 = time.perf_counter()
        s = self.codec.config.stride
        Kt = _as_tensor(K, "K")
        T = _as_tensor(T_world_camera, "T_world_camera")
        if T.ndim == 3 and Kt.ndim == 2:
            Kt = Kt.expand(T.shape[0], 3, 3)
        if Kt.ndim == 3 and T.ndim == 2:
            T = T.expand(Kt.shape[0], 4, 4)
        render, fine = render_for_codec(self.codec, self.memory, Kt, T, height, width)
        _sync(self.device)
        t1 = time.perf_counter()
        latents = render.latents.to(self.device)
        coverage = render.coverage.to(self.device)
        depth = render.depth_m.to(self.device)
        offset = render.offset.to(self.device)
        if fine is not None:
            fine = fine.to(self.device)
        rgb, conf = self._decode(latents, coverage, depth, height, width, offset, fine)
        _sync(self.device)
        t2 = time.perf_counter()
        depth_full = upsample_cells(depth[:, None], s, height, width)[:, 0]
        cov_full = upsample_cells(coverage[:, None].float(), s, height, width)[:, 0] > 0.5
        frac = coverage.flatten(1).float().mean(dim=1).tolist()
        return PredictedViews(
            rgb=rgb,
            confidence=conf[:, 0],
            depth_m=depth_full,
            coverage=cov_full,
            coverage_fraction=[float(f) for f in frac],
            timings_ms={
                "render": (t1 - t0) * 1e3,
                "decode": (t2 - t1) * 1e3,
                "total": (time.perf_counter() - t0) * 1e3,
            },
        )
