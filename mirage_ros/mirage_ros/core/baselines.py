"""The two reference memories the product is compared against (same integrate/render shape).

* :class:`PixelPointCloud` -- every valid pixel of every frame as a colored 3-D point (the
  pixel cache of GEN3C/Voyager-style video models), with optional voxel down-sampling to stay
  under a byte budget the caller may change at any step (``max_bytes``).
* :class:`AppendLatentCloud` -- Mirage's released memory: every latent cell appended as a
  point, nearest point wins at readout, no fusion, no pruning.

Both render with the same deterministic z-buffer as the product (the original Mirage readout
is not deterministic on CUDA; giving the reference ours keeps comparisons about the memory,
not the rasteriser). ``memory_bytes`` counts the bytes of the points held (position, feature,
frame index); spare buffer capacity is not charged to them, which favours the references.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mirage_ros.core.config import LATENT_DTYPES, resolve_device
from mirage_ros.core.errors import ConfigError, ShapeError
from mirage_ros.core.geometry import unproject, valid_depth_mask
from mirage_ros.core.integrate import prepare_frame
from mirage_ros.core.memory import IntegrateStats, RenderResult, prepare_views
from mirage_ros.core.voxel_hash import pack_keys, voxel_coords
from mirage_ros.core.zbuffer import zbuffer_splat

__all__ = ["AppendLatentCloud", "PixelPointCloud", "PointCloudConfig"]


@dataclass(frozen=True)
class PointCloudConfig:
    """Settings of the reference point clouds."""

    #: feature channels per point (3 for RGB, the codec's latent channels for latents)
    channels: int = 3
    #: feature storage dtype: "uint8" (RGB in [0, 1] stored as 0..255), "float16", "float32"
    feature_dtype: str = "uint8"
    #: depths outside [min_depth_m, max_depth_m] (and 0/NaN/inf) are skipped
    min_depth_m: float = 0.1
    max_depth_m: float = 10.0
    #: splat radius cap at render (px)
    splat_radius_px: int = 1
    #: physical size of one point for the splat footprint (m)
    point_size_m: float = 0.02
    #: byte budget (None = unbounded); PixelPointCloud down-samples to stay under it
    max_bytes: int | None = None
    #: first voxel size tried when down-sampling (doubles until the budget holds), m
    downsample_start_m: float = 0.01
    #: compute device: "auto", "cpu", "cuda", "cuda:N"
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ConfigError("channels must be >= 1")
        if self.feature_dtype not in ("uint8", *LATENT_DTYPES):
            raise ConfigError(
                f"feature_dtype must be uint8/float16/float32, got {self.feature_dtype}"
            )
        if not (0 <= self.min_depth_m < self.max_depth_m):
            raise ConfigError("need 0 <= min_depth_m < max_depth_m")
        if self.splat_radius_px < 0 or self.point_size_m <= 0 or self.downsample_start_m <= 0:
            raise ConfigError("splat_radius_px >= 0, point_size_m > 0, downsample_start_m > 0")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise ConfigError("max_bytes must be >= 0 or None")


class _PointStore:
    """Growable point arrays: positions (N, 3) f32, features (N, C), frame index (N,) i32."""

    def __init__(self, channels: int, dtype: torch.dtype, device: torch.device) -> None:
        self.positions = torch.zeros(0, 3, dtype=torch.float32, device=device)
        self.features = torch.zeros(0, channels, dtype=dtype, device=device)
        self.frame = torch.zeros(0, dtype=torch.int32, device=device)
        self.n = 0

    def append(self, pos: Tensor, feat: Tensor, frame_idx: int) -> None:
        m = pos.shape[0]
        need = self.n + m
        if need > self.positions.shape[0]:
            cap = max(need, 2 * self.positions.shape[0], 4096)
            for name in ("positions", "features", "frame"):
                old = getattr(self, name)
                new = old.new_zeros((cap, *old.shape[1:]))
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        self.positions[self.n : need] = pos
        self.features[self.n : need] = feat
        self.frame[self.n : need] = frame_idx
        self.n = need

    def keep(self, idx: Tensor) -> None:
        m = idx.numel()
        for name in ("positions", "features", "frame"):
            arr = getattr(self, name)
            arr[:m] = arr[idx].clone()
        self.n = m

    @property
    def point_bytes(self) -> int:
        per = 12 + self.features.shape[1] * self.features.element_size() + 4
        return self.n * per


class _CloudBase:
    def __init__(self, config: PointCloudConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        dtype = (
            torch.uint8 if config.feature_dtype == "uint8" else LATENT_DTYPES[config.feature_dtype]
        )
        self.store = _PointStore(config.channels, dtype, self.device)
        self.frame_stamps: list[int] = []
        self.size_m = config.point_size_m

    @property
    def memory_bytes(self) -> int:
        """Bytes of the points held (plus the per-frame stamps)."""
        return self.store.point_bytes + 8 * len(self.frame_stamps)

    @property
    def num_points(self) -> int:
        """Points held."""
        return self.store.n

    @property
    def frames_integrated(self) -> int:
        """Frames integrated."""
        return len(self.frame_stamps)

    def reset(self) -> None:
        """Forget everything."""
        self.__init__(self.config)  # type: ignore[misc]

    def stats(self) -> dict[str, int | float]:
        """Sizes (JSON-compatible)."""
        return {
            "points": self.num_points,
            "bytes": self.memory_bytes,
            "frames": self.frames_integrated,
        }

    def _append(self, feats: Tensor, depth_m: Tensor, K: Tensor, T: Tensor, stamp_ns: int) -> int:
        """feats (C, h, w) float32, depth (h, w), K (3, 3), T (4, 4) on device -> points added."""
        valid = valid_depth_mask(depth_m, self.config.min_depth_m, self.config.max_depth_m)
        pc = unproject(torch.where(valid, depth_m, torch.zeros_like(depth_m)), K)[valid]
        R = T[:3, :3].to(torch.float32)
        pw = pc @ R.T + T[:3, 3].to(torch.float32)
        f = feats.permute(1, 2, 0)[valid]
        if self.config.feature_dtype == "uint8":
            f = (f.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        self.store.append(pw, f.to(self.store.features.dtype), len(self.frame_stamps))
        self.frame_stamps.append(int(stamp_ns))
        return int(pw.shape[0])

    def render(
        self,
        K: Tensor,
        T_world_camera: Tensor,
        height: int,
        width: int,
        splat_radius_px: int | None = None,
    ) -> RenderResult:
        """Nearest point per pixel. K (3, 3)/(B, 3, 3), T (4, 4)/(B, 4, 4) -> batched result;
        splat_radius_px: the splat cap (None: the config's)."""
        r = self.config.splat_radius_px if splat_radius_px is None else splat_radius_px
        Kb, Tb = prepare_views(K, T_world_camera, height, width, self.device)
        n = self.store.n
        ids = torch.arange(n, dtype=torch.int64, device=self.device)
        hits = zbuffer_splat(
            self.store.positions[:n], ids, Kb, Tb, height=height, width=width,
            near_m=self.config.min_depth_m, max_radius_px=r, size_m=self.size_m,
        )  # fmt: skip
        cov = hits.index >= 0
        B, C = Kb.shape[0], self.config.channels
        feat = torch.zeros(B, height, width, C, dtype=torch.float32, device=self.device)
        age = torch.full((B, height, width), float("nan"), dtype=torch.float32, device=self.device)
        if bool(cov.any()):
            idx = hits.index[cov]
            f = self.store.features[idx].float()
            feat[cov] = f / 255.0 if self.config.feature_dtype == "uint8" else f
            stamps = torch.tensor(self.frame_stamps, dtype=torch.int64, device=self.device)
            fr = self.store.frame[idx].long()
            age[cov] = ((max(self.frame_stamps) - stamps[fr]).double() * 1e-9).float()
        return RenderResult(
            latents=feat.permute(0, 3, 1, 2).contiguous(),
            depth_m=hits.depth_m,
            coverage=cov,
            weight=cov.float(),
            age_s=age,
            offset=hits.offset.permute(0, 3, 1, 2).contiguous(),
        )


class PixelPointCloud(_CloudBase):
    """Every valid pixel of every frame as a colored point; optional budget by down-sampling."""

    def __init__(self, config: PointCloudConfig | None = None) -> None:
        super().__init__(config or PointCloudConfig())
        self.max_bytes: int | None = self.config.max_bytes
        self.downsample_m: float | None = None

    def integrate(
        self, features: Tensor, depth_m: Tensor, K: Tensor, T_world_camera: Tensor, stamp_ns: int
    ) -> IntegrateStats:
        """features: (C, H, W) float (RGB in [0, 1]); depth_m (H, W); K (3, 3); T (4, 4)."""
        frame = _frame(self, features, depth_m, K, T_world_camera, stamp_ns)
        added = self._append(frame[0], frame[1], frame[2], frame[3], stamp_ns)
        evicted = self._fit_budget()
        return IntegrateStats(cells_valid=added, voxels_new=added, voxels_evicted=evicted)

    def _fit_budget(self) -> int:
        """Voxel-downsample (one point per voxel, the earliest) until bytes <= max_bytes."""
        if self.max_bytes is None or self.memory_bytes <= self.max_bytes:
            return 0
        before = self.store.n
        size = self.downsample_m or self.config.downsample_start_m
        for _ in range(64):
            pos = self.store.positions[: self.store.n]
            ijk, ok = voxel_coords(pos, size)
            keys = torch.where(ok, pack_keys(ijk), torch.full_like(ok, -1, dtype=torch.int64))
            _, inv = torch.unique(keys, return_inverse=True)
            first = torch.full(
                (int(inv.max()) + 1,), self.store.n, dtype=torch.int64, device=self.device
            )
            first.scatter_reduce_(0, inv, torch.arange(self.store.n, device=self.device), "amin")
            self.store.keep(torch.sort(first).values)
            self.downsample_m = size
            self.size_m = max(self.config.point_size_m, size)
            if self.memory_bytes <= self.max_bytes or self.store.n == 0:
                break
            size *= 2.0
        if self.memory_bytes > self.max_bytes:  # even one point per huge voxel does not fit
            self.store.keep(torch.arange(0, device=self.device))
        return before - self.store.n


class AppendLatentCloud(_CloudBase):
    """Mirage-style memory: every latent cell appended, nearest point wins, no fusion."""

    def __init__(self, config: PointCloudConfig | None = None) -> None:
        cfg = config or PointCloudConfig(channels=16, feature_dtype="float16", point_size_m=0.05)
        if cfg.feature_dtype == "uint8":
            raise ConfigError("AppendLatentCloud stores latents: feature_dtype float16/float32")
        super().__init__(cfg)

    def integrate(
        self, latents: Tensor, depth_m: Tensor, K: Tensor, T_world_camera: Tensor, stamp_ns: int
    ) -> IntegrateStats:
        """latents: (C, h, w); depth_m (h, w); K (3, 3) of the latent grid; T (4, 4)."""
        frame = _frame(self, latents, depth_m, K, T_world_camera, stamp_ns)
        added = self._append(frame[0], frame[1], frame[2], frame[3], stamp_ns)
        return IntegrateStats(cells_valid=added, voxels_new=added)


def _frame(
    cloud: _CloudBase, feats: Tensor, depth_m: Tensor, K: Tensor, T: Tensor, stamp_ns: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validate and move inputs (the memory's own checks); invalid depth becomes 0."""
    if not isinstance(feats, Tensor) or feats.dim() != 3 or feats.shape[0] != cloud.config.channels:
        raise ShapeError(
            f"features must be ({cloud.config.channels}, h, w), got {getattr(feats, 'shape', None)}"
        )
    from mirage_ros.core.config import MemoryConfig

    cfg = MemoryConfig(
        latent_channels=cloud.config.channels,
        min_depth_m=cloud.config.min_depth_m,
        max_depth_m=cloud.config.max_depth_m,
        device=str(cloud.device),
    )
    f = prepare_frame(feats, depth_m, K, T, stamp_ns, config=cfg, device=cloud.device)
    return f.latents, f.depth_m, f.K, f.T_world_camera
