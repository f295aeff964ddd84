"""The evaluation protocol: a frame stream -> held-out frames, classes and per-class metrics.

Frames arrive in stamp order. Every k-th frame (``index % k == k - 1``; or every k-th run of
``holdout_run`` frames) is held out: it is not integrated; the view at its pose is predicted
from each memory as it is at that moment and compared with the real frame. All other frames
are integrated into the three memories, which run side by side on the same frames in one process:

* ``mirage``: our :class:`LatentSpatialMemory` behind a :class:`Predictor` (encode -> fuse;
  render -> decode with confidence);
* ``pixel_cloud``: :class:`PixelPointCloud`, full-resolution RGB points rendered directly; by
  default its byte budget is set, after our memory integrated the same frame, to our memory's
  bytes at that moment (equal memory);
* ``latent_cloud_append``: :class:`AppendLatentCloud`, Mirage's append-only latent cloud fed the
  same latents, rendered and decoded by the same codec decoder.

A held-out frame is classed from our memory alone (no ground truth needed): coverage fraction
below ``novel_coverage`` -> novel; else the median age of the covered cells (at the held-out
stamp) <= ``recent_window_s`` -> recent; else revisit. The class applies to all three memories.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mirage_ros.core.baselines import AppendLatentCloud, PixelPointCloud, PointCloudConfig
from mirage_ros.core.codec import Codec
from mirage_ros.core.config import MemoryConfig, resolve_device
from mirage_ros.core.errors import ConfigError
from mirage_ros.core.geometry import scale_intrinsics
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.predictor import Predictor, render_for_codec, rgb_to_tensor
from mirage_ros.evaluation import metrics

__all__ = [
    "CLASSES",
    "DEPTH_BINS_M",
    "MEMORIES",
    "EvalConfig",
    "Evaluator",
    "FrameRecord",
    "Prediction",
    "resize_frame",
]

CLASSES = ("recent", "revisit", "novel")
MEMORIES = ("mirage", "pixel_cloud", "latent_cloud_append")
#: edges (m) of the true-depth bins of the covered-pixel breakdown (``by_depth`` in metrics.json)
DEPTH_BINS_M = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, math.inf)
_METRIC_KEYS = (
    "psnr",
    "ssim",
    "psnr_covered",
    "ssim_covered",
    "coverage",
    "depth_abs_rel",
    "confidence_spearman",
)


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run (recorded in metrics.json)."""

    holdout_every: int = 5
    """k: frames with index % k == k - 1 are held out (never integrated)."""
    holdout_run: int = 1
    """Held-out frames come in runs of this many: (index // run) % k == k - 1. 1 is the
    protocol of the issue; longer runs leave the ends of each run without recent neighbours,
    which is what makes revisits and novel views measurable on a continuous stream."""
    recent_window_s: float = 3.0
    """A held-out frame whose covered cells were seen within this many seconds is 'recent'."""
    novel_coverage: float = 0.2
    """A held-out frame whose memory coverage fraction is below this is 'novel'."""
    reference_budget: str = "equal"
    """'equal': the pixel cloud never holds more bytes than our memory; 'unbounded'."""
    references: bool = True
    """Run the two reference memories next to ours."""
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    """Our memory's settings (latent_channels is taken from the codec)."""
    pixel_point_size_m: float = 0.02
    """Splat size of one pixel-cloud point (m)."""

    def __post_init__(self) -> None:
        if self.holdout_every < 2:
            raise ConfigError(f"holdout_every must be >= 2, got {self.holdout_every}")
        if self.holdout_run < 1:
            raise ConfigError(f"holdout_run must be >= 1, got {self.holdout_run}")
        if not self.recent_window_s >= 0:
            raise ConfigError(f"recent_window_s must be >= 0, got {self.recent_window_s}")
        if not 0.0 <= self.novel_coverage <= 1.0:
            raise ConfigError(f"novel_coverage must be in [0, 1], got {self.novel_coverage}")
        if self.reference_budget not in ("equal", "unbounded"):
            raise ConfigError(
                f"reference_budget must be 'equal' or 'unbounded', got {self.reference_budget!r}"
            )
        if not self.pixel_point_size_m > 0:
            raise ConfigError("pixel_point_size_m must be > 0")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["memory"] = self.memory.to_dict()
        return d


@dataclass
class Prediction:
    """One memory's prediction of a held-out view (numpy, full resolution)."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    confidence: np.ndarray  # (H, W) float32 in [0, 1]
    depth_m: np.ndarray  # (H, W) float32, NaN unknown
    coverage: np.ndarray  # (H, W) bool
    predict_ms: float


@dataclass
class FrameRecord:
    """Results for one held-out frame (one row of frames.csv)."""

    index: int
    stamp_ns: int
    cls: str
    coverage_fraction: float  # our memory, latent grid
    median_age_s: float  # NaN when nothing is covered
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # memory -> key -> value
    memory_bytes: dict[str, int] = field(default_factory=dict)
    # memory -> (bins, 3): covered pixels with valid true depth per DEPTH_BINS_M bin: count,
    # sum of squared error (mean over RGB), sum of SSIM
    by_depth: dict[str, np.ndarray] = field(default_factory=dict)


def resize_frame(
    rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize on input: rgb (H, W, 3) uint8 with area/linear filtering, depth (H, W) nearest
    (never blends across edges), K (3, 3) pixel-centre correct."""
    import cv2

    h0, w0 = depth_m.shape
    if (w0, h0) == (width, height):
        return rgb, depth_m, K
    interp = cv2.INTER_AREA if width < w0 else cv2.INTER_LINEAR
    rgb_r = cv2.resize(rgb, (width, height), interpolation=interp)
    depth_r = cv2.resize(depth_m, (width, height), interpolation=cv2.INTER_NEAREST)
    K_r = scale_intrinsics(torch.tensor(K, dtype=torch.float64), width / w0, height / h0)
    return rgb_r, depth_r, K_r.numpy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class Evaluator:
    """Runs the protocol frame by frame; ``step`` returns a record for every held-out frame."""

    def __init__(
        self,
        config: EvalConfig,
        codec: Codec,
        on_heldout: Callable[[FrameRecord, np.ndarray, dict[str, Prediction]], None] | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.memory.device)
        self.codec = codec.to(self.device).eval()
        channels = codec.config.latent_channels
        mem_cfg = dataclasses.replace(config.memory, latent_channels=channels)
        self.predictor = Predictor(self.codec, LatentSpatialMemory(mem_cfg))
        self.pixel: PixelPointCloud | None = None
        self.append: AppendLatentCloud | None = None
        if config.references:
            dev = str(self.device)
            self.pixel = PixelPointCloud(
                PointCloudConfig(
                    channels=3, feature_dtype="uint8", point_size_m=config.pixel_point_size_m,
                    min_depth_m=mem_cfg.min_depth_m, max_depth_m=mem_cfg.max_depth_m, device=dev,
                )
            )  # fmt: skip
            self.append = AppendLatentCloud(
                PointCloudConfig(
                    channels=channels, feature_dtype="float16", point_size_m=mem_cfg.voxel_size_m,
                    min_depth_m=mem_cfg.min_depth_m, max_depth_m=mem_cfg.max_depth_m, device=dev,
                )
            )  # fmt: skip
        self.on_heldout = on_heldout
        self.records: list[FrameRecord] = []
        self.timeline: list[dict[str, Any]] = []  # one row per frame: index, stamp, bytes
        self.integrate_ms: dict[str, list[float]] = {m: [] for m in self.memories}
        self.predict_ms: dict[str, list[float]] = {m: [] for m in self.memories}
        self.encode_ms: list[float] = []
        self.integrated = 0
        self.peak_bytes: dict[str, int] = {m: 0 for m in self.memories}

    @property
    def memories(self) -> tuple[str, ...]:
        """Names of the memories that run."""
        return MEMORIES if self.config.references else MEMORIES[:1]

    def memory_bytes(self) -> dict[str, int]:
        """Bytes each memory holds now."""
        out = {"mirage": self.predictor.memory.memory_bytes}
        if self.pixel is not None and self.append is not None:
            out["pixel_cloud"] = self.pixel.memory_bytes
            out["latent_cloud_append"] = self.append.memory_bytes
        return out

    def is_heldout(self, index: int) -> bool:
        """Whether frame ``index`` is held out (never integrated)."""
        k, run = self.config.holdout_every, self.config.holdout_run
        return (index // run) % k == k - 1

    def step(
        self, index: int, stamp_ns: int, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray,
        T_world_camera: np.ndarray,
    ) -> FrameRecord | None:  # fmt: skip
        """Feed frame ``index``: rgb (H, W, 3) uint8, depth_m (H, W) metres (0 = invalid),
        K (3, 3), T_world_camera (4, 4). Returns the record if the frame was held out."""
        rgb = np.require(rgb, requirements=["C", "W"])  # bag buffers are read-only
        depth_m = np.require(depth_m, dtype=np.float32, requirements=["C", "W"])
        K = np.array(K, dtype=np.float64)
        T_world_camera = np.array(T_world_camera, dtype=np.float64)
        record = None
        if self.is_heldout(index):
            record = self._heldout(index, stamp_ns, rgb, depth_m, K, T_world_camera)
        else:
            self._integrate(stamp_ns, rgb, depth_m, K, T_world_camera)
        row: dict[str, Any] = {"index": index, "stamp_ns": stamp_ns}
        row.update(self.memory_bytes())
        for m in self.memories:
            self.peak_bytes[m] = max(self.peak_bytes[m], row[m])
        self.timeline.append(row)
        return record

    def _integrate(
        self, stamp_ns: int, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, T: np.ndarray
    ) -> None:
        t0 = time.perf_counter()
        latents, depth_lat, K_lat = self.predictor.encode_frame(rgb, depth_m, K)
        _sync(self.device)
        t1 = time.perf_counter()
        T_t = torch.as_tensor(T, dtype=torch.float64)
        with torch.inference_mode():
            self.predictor.memory.integrate(latents, depth_lat, K_lat, T_t, stamp_ns)
            _sync(self.device)
            t2 = time.perf_counter()
            encode_ms = (t1 - t0) * 1e3
            self.encode_ms.append(encode_ms)
            self.integrate_ms["mirage"].append(encode_ms + (t2 - t1) * 1e3)
            if self.pixel is not None and self.append is not None:
                if self.config.reference_budget == "equal":
                    self.pixel.max_bytes = self.predictor.memory.memory_bytes
                K_t = torch.as_tensor(K, dtype=torch.float64)
                depth_t = torch.as_tensor(depth_m, dtype=torch.float32)
                t3 = time.perf_counter()
                self.pixel.integrate(rgb_to_tensor(rgb), depth_t, K_t, T_t, stamp_ns)
                _sync(self.device)
                t4 = time.perf_counter()
                self.append.integrate(latents, depth_lat, K_lat, T_t, stamp_ns)
                _sync(self.device)
                t5 = time.perf_counter()
                self.integrate_ms["pixel_cloud"].append((t4 - t3) * 1e3)
                self.integrate_ms["latent_cloud_append"].append(encode_ms + (t5 - t4) * 1e3)
        self.integrated += 1

    def _classify(
        self, stamp_ns: int, K: np.ndarray, T: np.ndarray, h: int, w: int
    ) -> tuple[str, float, float]:
        """(class, coverage fraction, median age at stamp_ns) from our memory's render."""
        mem = self.predictor.memory
        s = self.codec.config.stride
        hl, wl = self.codec.latent_shape(h, w)
        K_lat = scale_intrinsics(torch.as_tensor(K, dtype=torch.float64), 1.0 / s, 1.0 / s)
        with torch.inference_mode():
            r = mem.render(K_lat, torch.as_tensor(T, dtype=torch.float64), hl, wl)
        cov = r.coverage[0]
        frac = float(cov.float().mean())
        if not bool(cov.any()):
            return "novel", frac, float("nan")
        newest = mem.newest_stamp_ns if mem.newest_stamp_ns is not None else stamp_ns
        age = float(torch.median(r.age_s[0][cov]).item()) + (stamp_ns - newest) * 1e-9
        if frac < self.config.novel_coverage:
            return "novel", frac, age
        return ("recent" if age <= self.config.recent_window_s else "revisit"), frac, age

    def _predict_all(self, K: np.ndarray, T: np.ndarray, h: int, w: int) -> dict[str, Prediction]:
        out: dict[str, Prediction] = {}
        v = self.predictor.predict(K, T, h, w)
        out["mirage"] = Prediction(
            _np(v.rgb[0].permute(1, 2, 0)), _np(v.confidence[0]), _np(v.depth_m[0]),
            v.coverage[0].cpu().numpy(), v.timings_ms["total"],
        )  # fmt: skip
        if self.pixel is None or self.append is None:
            return out
        K_t = torch.as_tensor(K, dtype=torch.float64)
        T_t = torch.as_tensor(T, dtype=torch.float64)
        with torch.inference_mode():
            t0 = time.perf_counter()
            r = self.pixel.render(K_t, T_t, h, w)
            _sync(self.device)
            t1 = time.perf_counter()
            cov = r.coverage[0]
            out["pixel_cloud"] = Prediction(
                _np(r.latents[0].permute(1, 2, 0)), _np(cov.float()), _np(r.depth_m[0]),
                cov.cpu().numpy(), (t1 - t0) * 1e3,
            )  # fmt: skip
            t2 = time.perf_counter()
            ra, fine = render_for_codec(self.codec, self.append, K_t, T_t, h, w)
            rgb, conf = self.codec.decode(
                ra.latents, ra.coverage, ra.depth_m, h, w, ra.offset, fine
            )
            _sync(self.device)
            t3 = time.perf_counter()
            up = torch.nn.functional.interpolate
            cov_a = up(ra.coverage[:, None].float(), size=(h, w), mode="nearest")[0, 0] > 0.5
            dep_a = up(ra.depth_m[:, None], size=(h, w), mode="nearest")[0, 0]
            out["latent_cloud_append"] = Prediction(
                _np(rgb[0].permute(1, 2, 0)), _np(conf[0, 0]), _np(dep_a),
                cov_a.cpu().numpy(), (t3 - t2) * 1e3,
            )  # fmt: skip
        return out

    def _heldout(
        self, index: int, stamp_ns: int, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray,
        T: np.ndarray,
    ) -> FrameRecord:  # fmt: skip
        h, w = depth_m.shape
        cls, frac, age = self._classify(stamp_ns, K, T, h, w)
        preds = self._predict_all(K, T, h, w)
        real = rgb.astype(np.float32) / 255.0
        rec = FrameRecord(index, stamp_ns, cls, frac, age, memory_bytes=self.memory_bytes())
        bins = np.digitize(depth_m, DEPTH_BINS_M[1:-1])  # bin of each pixel's true depth
        valid = np.isfinite(depth_m) & (depth_m > 0)
        for name, p in preds.items():
            err = np.abs(p.rgb - real).mean(axis=-1)
            smap = metrics.ssim_map(p.rgb, real)
            rec.by_depth[name] = _depth_sums(bins, p.coverage & valid, (p.rgb - real) ** 2, smap)
            rec.metrics[name] = {
                "psnr": metrics.psnr(p.rgb, real),
                "ssim": metrics.ssim_from_map(smap),
                "psnr_covered": metrics.psnr(p.rgb, real, p.coverage),
                "ssim_covered": metrics.ssim_from_map(smap, p.coverage),
                "coverage": float(p.coverage.mean()),
                "depth_abs_rel": metrics.depth_abs_rel(p.depth_m, depth_m),
                "confidence_spearman": metrics.spearman(p.confidence, -err),
                "predict_ms": p.predict_ms,
            }
            self.predict_ms[name].append(p.predict_ms)
        self.records.append(rec)
        if self.on_heldout is not None:
            self.on_heldout(rec, rgb, preds)
        return rec

    def summary(self) -> dict[str, Any]:
        """Counts and per-memory, per-class metrics in the metrics.json schema."""
        counts = {c: sum(r.cls == c for r in self.records) for c in CLASSES}
        out: dict[str, Any] = {"frames": {"integrated": self.integrated, **counts}}
        final = self.memory_bytes()
        for name in MEMORIES:
            if name not in self.memories:
                out[name] = None
                continue
            entry: dict[str, Any] = {}
            for c in CLASSES:
                recs = [r for r in self.records if r.cls == c]
                entry[c] = _aggregate([r.metrics[name] for r in recs]) if recs else None
                if recs:
                    entry[c]["by_depth"] = _by_depth(sum(r.by_depth[name] for r in recs))
            entry["memory_bytes"] = final[name]
            entry["memory_bytes_peak"] = self.peak_bytes[name]
            entry["integrate_ms_p50"] = _pct(self.integrate_ms[name], 50)
            entry["integrate_ms_p95"] = _pct(self.integrate_ms[name], 95)
            entry["predict_ms_p50"] = _pct(self.predict_ms[name], 50)
            entry["predict_ms_p95"] = _pct(self.predict_ms[name], 95)
            out[name] = entry
        out["encode_ms_p50"] = _pct(self.encode_ms, 50)
        return out


def _finite_mean(values: list[float]) -> float | None:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else None


def _aggregate(rows: list[dict[str, float]]) -> dict[str, Any]:
    agg: dict[str, Any] = {key: _finite_mean([r[key] for r in rows]) for key in _METRIC_KEYS}
    agg["count"] = len(rows)
    return agg


def _depth_sums(bins: np.ndarray, mask: np.ndarray, sq: np.ndarray, smap: np.ndarray) -> np.ndarray:
    """(bins, 3) count, squared-error sum, SSIM sum of the masked pixels per depth bin."""
    n = len(DEPTH_BINS_M) - 1
    b = bins[mask]
    return np.stack(
        [
            np.bincount(b, minlength=n).astype(np.float64),
            np.bincount(b, weights=sq.mean(axis=-1)[mask], minlength=n),
            np.bincount(b, weights=smap[mask], minlength=n),
        ],
        axis=1,
    )


def _by_depth(sums: np.ndarray) -> list[dict[str, Any]]:
    """Covered quality per true-depth bin, pooled over a class's views (PSNR of the pooled
    squared error, mean SSIM): where in depth the memory loses detail."""
    out = []
    for k in range(len(DEPTH_BINS_M) - 1):
        count, sq, ssim = (float(x) for x in sums[k])
        hi = DEPTH_BINS_M[k + 1]
        out.append(
            {
                "depth_m": [DEPTH_BINS_M[k], hi if math.isfinite(hi) else None],
                "pixels": int(count),
                "psnr_covered": -10.0 * math.log10(max(sq / count, 1e-12)) if count else None,
                "ssim_covered": ssim / count if count else None,
            }
        )
    return out


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
