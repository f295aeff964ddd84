"""Training data: cached frame sequences and samples rendered through the latent memory.

A :class:`FrameSet` is one camera sequence held in RAM (rgb, depth on the latent grid, poses,
intrinsics), built from the synthetic generator (``texture_set="train"``, seeds >= 1000; the
evaluation uses seeds < 1000 and the "test" textures) or from the user's rosbags (RGB-D + TF).
:func:`build_memory_pool` streams each set through a real :class:`LatentSpatialMemory` with a
frozen encoder and records the rendered latent maps at held-out poses (recent, revisit and
never-seen targets), which the decoder then learns to turn back into the real frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mirage_ros.core.codec import Codec
from mirage_ros.core.errors import ConfigError
from mirage_ros.core.geometry import depth_at_stride, scale_intrinsics
from mirage_ros.core.predictor import render_for_codec

__all__ = [
    "EVAL_SEED_LIMIT",
    "FrameSet",
    "MemorySample",
    "bag_framesets",
    "build_memory_pool",
    "framesets_from_frames",
    "scene_kind",
    "synthetic_framesets",
]

#: evaluation scenes use seeds below this; training seeds must be >= it
EVAL_SEED_LIMIT = 1000


@dataclass
class FrameSet:
    """One sequence of N frames at H x W (latent grid h x w = H//s x W//s)."""

    name: str
    rgb: np.ndarray
    """(N,H,W,3) uint8."""
    depth_lat: np.ndarray
    """(N,h,w) float32 metres on the latent grid, 0 = invalid."""
    K: np.ndarray
    """(N,3,3) float64 full-resolution intrinsics."""
    T_world_camera: np.ndarray
    """(N,4,4) float64 optical-frame poses."""
    stamp_ns: np.ndarray
    """(N,) int64."""

    def __len__(self) -> int:
        return int(self.rgb.shape[0])


@dataclass
class MemorySample:
    """The memory rendered at a held-out frame's pose (on the latent grid)."""

    set_index: int
    frame_index: int
    latents: Tensor
    """(C,h,w) float16, 0 where not covered."""
    coverage: Tensor
    """(h,w) bool."""
    depth_m: Tensor
    """(h,w) float32, NaN where not covered."""
    kind: str
    """"stream" (memory of everything before it) or "window" (memory of a distant window)."""
    offset: Tensor
    """(2,h,w) float16, the render's sub-cell offsets (0 where not covered)."""
    fine: Tensor | None = None
    """(fine_channels(C),h,w) float16, the render at twice the latent resolution
    (``codec_nets.fine_features``), for codecs with ``fine_render``; else None."""


def framesets_from_frames(name: str, frames: Iterable[Any], stride: int) -> FrameSet:
    """Collect frames (objects with rgb, depth_m, K, T_world_camera, stamp_ns) into a FrameSet."""
    rgb, depth, Ks, Ts, stamps = [], [], [], [], []
    for f in frames:
        rgb.append(np.asarray(f.rgb, dtype=np.uint8))
        d = torch.as_tensor(np.asarray(f.depth_m, dtype=np.float32))
        depth.append(depth_at_stride(d, stride).numpy())
        Ks.append(np.asarray(f.K, dtype=np.float64))
        Ts.append(np.asarray(f.T_world_camera, dtype=np.float64))
        stamps.append(int(f.stamp_ns))
    if not rgb:
        raise ConfigError(f"sequence {name} has no frames")
    return FrameSet(
        name=name,
        rgb=np.stack(rgb),
        depth_lat=np.stack(depth),
        K=np.stack(Ks),
        T_world_camera=np.stack(Ts),
        stamp_ns=np.asarray(stamps, dtype=np.int64),
    )


def scene_kind(seed: int) -> str:
    """Every third scene is one furnished room, the others apartments (rooms + corridor)."""
    return "room" if seed % 3 == 2 else "apartment"


def synthetic_framesets(
    seeds: Sequence[int],
    frames: int,
    width: int,
    height: int,
    stride: int,
    texture_set: str = "train",
    camera_rate_hz: float = 5.0,
    allow_eval_seeds: bool = False,
    progress: bool = False,
) -> list[FrameSet]:
    """Render one FrameSet per seed with the synthetic generator (deterministic by seed)."""
    from mirage_ros.sim import SceneConfig, SyntheticSequence

    bad = [s for s in seeds if s < EVAL_SEED_LIMIT]
    if bad and not allow_eval_seeds:
        raise ConfigError(f"training seeds must be >= {EVAL_SEED_LIMIT} (evaluation seeds): {bad}")
    out = []
    for seed in seeds:
        cfg = SceneConfig(
            seed=int(seed),
            kind=scene_kind(int(seed)),
            texture_set=texture_set,
            width=width,
            height=height,
            frames=frames,
            camera_rate_hz=camera_rate_hz,
        )
        seq = SyntheticSequence(cfg)
        it: Iterable[Any] = seq
        if progress:
            from tqdm import tqdm

            it = tqdm(seq, total=len(seq), desc=f"render seed {seed}", leave=False)
        out.append(framesets_from_frames(f"synthetic-{texture_set}-{seed}", it, stride))
    return out


def bag_framesets(
    paths: Sequence[str | Path], stride: int, max_frames: int = 2000
) -> list[FrameSet]:
    """Read RGB-D + TF frames from rosbags (self-supervised fine-tuning on the robot's world)."""
    if not paths:
        return []
    from mirage_ros.bag import read_frames

    out = []
    for path in paths:
        frames = list(
            read_frames(
                [Path(path)],
                "camera/color/image_raw",
                "camera/depth/image_raw",
                "camera/color/camera_info",
                fixed_frame="map",
                max_frames=max_frames,
            )
        )
        out.append(framesets_from_frames(f"bag:{Path(path).name}", frames, stride))
    return out


@torch.no_grad()
def _encode_all(codec: Codec, fs: FrameSet, batch: int = 8) -> Tensor:
    dev = next(codec.parameters()).device
    h, w = fs.depth_lat.shape[1:]
    chunks = []
    for i in range(0, len(fs), batch):
        x = torch.from_numpy(fs.rgb[i : i + batch]).to(dev).permute(0, 3, 1, 2).float() / 255.0
        chunks.append(codec.encode(x)[:, :, :h, :w].to("cpu"))
    return torch.cat(chunks)


def _render(
    codec: Codec, memory: Any, fs: FrameSet, si: int, index: int, kind: str
) -> MemorySample:
    h, w = fs.depth_lat.shape[1:]
    s = codec.config.stride
    r, fine = render_for_codec(
        codec,
        memory,
        torch.from_numpy(fs.K[index]),
        torch.from_numpy(fs.T_world_camera[index]),
        h * s,
        w * s,
    )
    return MemorySample(
        si,
        index,
        r.latents[0].to("cpu", torch.float16),
        r.coverage[0].to("cpu"),
        r.depth_m[0].to("cpu", torch.float32),
        kind,
        r.offset[0].to("cpu", torch.float16),
        None if fine is None else fine[0].to("cpu", torch.float16),
    )


@torch.no_grad()
def build_memory_pool(
    codec: Codec,
    framesets: Sequence[FrameSet],
    memory_config: Any,
    rng: np.random.Generator,
    holdout_every: int = 4,
    window_fraction: float = 0.25,
    window_targets: int = 24,
) -> list[MemorySample]:
    """Render training targets through real memories built with the (frozen) encoder.

    Per set: (1) a *stream* memory integrates every frame except every ``holdout_every``-th,
    which is rendered from the memory as it is at that moment (recent and revisit targets, as
    in the evaluation protocol); (2) a *window* memory integrates every other frame of a random
    window and is rendered at random frames elsewhere in the sequence (revisits from far away
    and never-seen views: low coverage, imagination).
    """
    from mirage_ros.core.memory import LatentSpatialMemory

    s = codec.config.stride
    pool: list[MemorySample] = []
    for si, fs in enumerate(framesets):
        lat = _encode_all(codec, fs)
        n = len(fs)
        K_lat = [scale_intrinsics(torch.from_numpy(k), 1.0 / s, 1.0 / s) for k in fs.K]

        def integrate(
            mem: Any, i: int, fs: FrameSet = fs, lat: Tensor = lat, K_lat: Any = K_lat
        ) -> None:
            mem.integrate(
                lat[i],
                torch.from_numpy(fs.depth_lat[i]),
                K_lat[i],
                torch.from_numpy(fs.T_world_camera[i]),
                int(fs.stamp_ns[i]),
            )

        mem = LatentSpatialMemory(memory_config, codec_id=codec.codec_id)
        for i in range(n):
            if i % holdout_every == holdout_every - 1:
                pool.append(_render(codec, mem, fs, si, i, "stream"))
            else:
                integrate(mem, i)
        mem = LatentSpatialMemory(memory_config, codec_id=codec.codec_id)
        length = max(2, int(n * window_fraction))
        start = int(rng.integers(0, max(1, n - length)))
        window = range(start, min(n, start + length))
        for i in window:
            if (i - start) % 2 == 0:
                integrate(mem, i)
        targets = rng.choice(n, size=min(window_targets, n), replace=False)
        for i in sorted(int(t) for t in targets):
            if i in window and (i - start) % 2 == 0:
                continue  # integrated: not a held-out target
            pool.append(_render(codec, mem, fs, si, i, "window"))
    return pool
