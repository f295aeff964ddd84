"""``mirage bench``: time and size our memory against the two reference memories (JSON).

One run feeds the same synthetic, revisiting stream to three memories: ours
(:class:`LatentSpatialMemory`), the Mirage-style append-only latent cloud and the pixel RGB
point cloud. The stream is analytic and cheap: a camera loops around a box room with pillars
(every lap passes the same places, with a small lap-dependent offset), depth comes from exact
ray/box intersection, latents and colours are smooth functions of the world point seen, so
a revisit sees the same content. Reported: integrate ms/frame (p50, p95), render ms/view at
the latent grids of 640x480 and 320x240 cameras (and full-pixel grids for the pixel cloud), a
16-view batched render, bytes after N frames (a curve), ratios to ours and the CPU targets,
and the codec on our memory: the two renders a prediction takes and the decode of one 640x480
and 320x240 view, eager and (on CUDA) replayed from a CUDA graph as the node does.

The references grow without bound; they are integrated for ``--ref-frames`` frames and, past
that, their exact byte count is *computed* from the number of valid cells/pixels (they append
every one of them), flagged ``"measured": false`` in the curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mirage_ros.core.baselines import AppendLatentCloud, PixelPointCloud, PointCloudConfig
from mirage_ros.core.config import MemoryConfig, resolve_device
from mirage_ros.core.errors import ConfigError
from mirage_ros.core.geometry import depth_at_stride, scale_intrinsics
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.persistence import memory_from_tensors
from mirage_ros.core.voxel_hash import pack_keys, unpack_keys

__all__ = ["BenchStream", "add_arguments", "run", "run_bench"]

ROOM = ((-5.0, -4.0, 0.0), (5.0, 4.0, 3.0))
PILLARS = (
    ((-1.0, -0.6, 0.0), (0.2, 0.6, 1.4)),
    ((2.2, 1.2, 0.0), (2.8, 1.8, 3.0)),
    ((-3.0, 1.5, 0.0), (-2.4, 2.3, 0.9)),
    ((1.0, -2.4, 0.0), (1.8, -1.8, 2.0)),
)


def _look(eye: Tensor, fwd: Tensor) -> Tensor:
    z = fwd / fwd.norm()
    x = torch.linalg.cross(z, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    x = x / x.norm()
    T = torch.eye(4, dtype=torch.float64)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, torch.linalg.cross(z, x), z, eye
    return T


class BenchStream:
    """The synthetic revisiting stream (deterministic; frames are computed on ``device``)."""

    def __init__(
        self,
        width: int,
        height: int,
        stride: int,
        channels: int,
        lap_frames: int,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        self.width, self.height, self.stride, self.channels = width, height, stride, channels
        self.lap_frames, self.device = lap_frames, device
        f = 0.8 * width
        self.K = torch.tensor(
            [[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]],
            dtype=torch.float64,
        )
        self.K_latent = scale_intrinsics(self.K, 1.0 / stride, 1.0 / stride)
        g = torch.Generator().manual_seed(seed)
        self._A = (torch.randn(3, channels + 3, generator=g, dtype=torch.float64) * 4.0).to(device)
        self._b = (torch.rand(channels + 3, generator=g, dtype=torch.float64) * 6.28).to(device)

    def pose(self, i: int) -> Tensor:
        """T_world_camera (4, 4) float64 of frame i (a lap of an ellipse, looking around)."""
        lap, t = divmod(i, self.lap_frames)
        a = 2.0 * math.pi * t / self.lap_frames
        off = 0.15 * math.sin(1.7 * lap)
        eye = torch.tensor(
            [(3.6 + off) * math.cos(a), (2.8 + off) * math.sin(a), 1.2 + 0.1 * math.sin(3 * a)],
            dtype=torch.float64,
        )
        yaw = a + math.pi / 2 + 0.6 * math.sin(5 * a)
        fwd = torch.tensor([math.cos(yaw), math.sin(yaw), -0.15], dtype=torch.float64)
        return _look(eye, fwd)

    def _raycast(self, T: Tensor, K: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
        dev = self.device
        Kd, Td = K.to(dev), T.to(dev)
        u = torch.arange(w, device=dev, dtype=torch.float64)
        v = torch.arange(h, device=dev, dtype=torch.float64)
        dx = ((u[None, :] - Kd[0, 2]) / Kd[0, 0]).expand(h, w)
        dy = ((v[:, None] - Kd[1, 2]) / Kd[1, 1]).expand(h, w)
        dc = torch.stack([dx, dy, torch.ones_like(dx)], dim=-1)
        d = dc @ Td[:3, :3].T
        o = Td[:3, 3]
        inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
        depth = torch.full((h, w), float("inf"), dtype=torch.float64, device=dev)
        for lo, hi, solid in [(b[0], b[1], True) for b in PILLARS] + [(ROOM[0], ROOM[1], False)]:
            t1 = (torch.tensor(lo, dtype=torch.float64, device=dev) - o) * inv
            t2 = (torch.tensor(hi, dtype=torch.float64, device=dev) - o) * inv
            tmin, tmax = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
            if solid:
                t, ok = tmin, (tmax >= tmin) & (tmin > 0)
            else:
                t, ok = tmax, tmax > 0
            depth = torch.where(ok, torch.minimum(depth, t), depth)
        return depth, o + d * depth[..., None]

    def frame(self, i: int) -> dict[str, Any]:
        """Frame i: full-res depth (H, W) + rgb (3, H, W); latent-grid depth + latents (C, h, w)."""
        T = self.pose(i)
        depth, pts = self._raycast(T, self.K, self.height, self.width)
        feats = torch.nan_to_num(torch.sin(pts @ self._A + self._b))  # (H, W, C + 3)
        rgb = ((feats[..., :3] + 1.0) * 0.5).permute(2, 0, 1).float()
        depth_f = depth.float()
        d_lat = depth_at_stride(depth_f, self.stride)
        s = self.stride
        cells = feats[s // 2 :: s, s // 2 :: s, 3:][: d_lat.shape[0], : d_lat.shape[1]]
        latents = cells.permute(2, 0, 1).float().contiguous()
        return {"T": T, "depth": depth_f, "rgb": rgb, "depth_latent": d_lat, "latents": latents}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn: Callable[..., Any], *args: Any) -> float:
    """Wall milliseconds of ``fn(*args)`` (CUDA synchronised before and after)."""
    return _timed_result(device, fn, *args)[0]


def _timed_result(device: torch.device, fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """(wall milliseconds, result) of ``fn(*args)`` (CUDA synchronised before and after)."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn(*args)
    _sync(device)
    return (time.perf_counter() - t0) * 1e3, out


def _pct(xs: list[float]) -> dict[str, float | int]:
    if not xs:
        return {"count": 0}
    s = sorted(xs)

    def q(p: float) -> float:
        return s[min(len(s) - 1, round(p * (len(s) - 1)))]

    return {"p50": q(0.5), "p95": q(0.95), "mean": sum(s) / len(s), "count": len(s)}


def _render_times(
    mem: Any, K: Tensor, poses: list[Tensor], h: int, w: int, device: torch.device
) -> dict[str, float | int]:
    mem.render(K, poses[0], h, w)  # warm-up
    return _pct([_timed(device, mem.render, K, T, h, w) for T in poses])


def prefilled_memory(cfg: MemoryConfig, voxels: int, seed: int = 0) -> LatentSpatialMemory:
    """A memory holding ``voxels`` random voxels spread through the bench room (for scaling)."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor(ROOM[0], dtype=torch.float64)
    span = torch.tensor(ROOM[1], dtype=torch.float64) - lo
    n_cells = (span / cfg.voxel_size_m).floor().to(torch.int64)
    if int(n_cells.prod()) < voxels:
        raise ConfigError(f"the bench room holds fewer than {voxels} voxels of this size")
    # ``voxels`` distinct cells of the room, drawn without replacement
    flat = torch.randperm(int(n_cells.prod()), generator=g)[:voxels]
    ny, nz = int(n_cells[1]), int(n_cells[2])
    ijk = torch.stack([flat // (ny * nz), (flat // nz) % ny, flat % nz], 1)
    ijk = ijk + (lo / cfg.voxel_size_m).floor().to(torch.int64)
    keys = pack_keys(ijk).sort().values
    pos = ((unpack_keys(keys).double() + 0.5) * cfg.voxel_size_m).float()
    tensors = {
        "keys": keys,
        "stamps": torch.zeros(keys.numel(), dtype=torch.int64),
        "weights": torch.full((keys.numel(),), cfg.max_weight),
        "positions": pos,
        # no normals: the back-face test runs at render but finds none (an upper bound on cost)
        "normals": torch.zeros(keys.numel(), 3, dtype=torch.float16),
        "latents": torch.randn(keys.numel(), cfg.latent_channels, generator=g),
    }
    return memory_from_tensors(cfg, "bench", {"num_voxels": int(keys.numel())}, tensors)


def scaling(
    stream: BenchStream, cfg: MemoryConfig, counts: list[int], frames: int, device: torch.device
) -> list[dict[str, Any]]:
    """Integrate/render cost of our memory when it already holds ``counts`` voxels."""
    out = []
    K640 = scale_intrinsics(
        stream.K, 640 / stream.width / stream.stride, 480 / stream.height / stream.stride
    )
    hw = (480 // stream.stride, 640 // stream.stride)
    Tb = torch.stack([stream.pose(int(j * stream.lap_frames / 16)) for j in range(16)])
    for n in counts:
        mem = prefilled_memory(cfg, n)
        t = []
        for i in range(frames):
            fr = stream.frame(i * 3)
            args = (fr["latents"], fr["depth_latent"], stream.K_latent, fr["T"], 10**9 + i)
            t.append(_timed(device, mem.integrate, *args))
        poses = [stream.pose(17 * j) for j in range(5)]
        out.append(
            {
                "voxels_before": n,
                "voxels_after": mem.num_voxels,
                "bytes": mem.memory_bytes,
                "integrate_ms": _pct(t[1:]),
                "render_ms_640x480_latent": _render_times(mem, K640, poses, *hw, device),
                "render_ms_batched16_640x480_latent": _pct(
                    [_timed(device, mem.render, K640, Tb, *hw) for _ in range(3)]
                ),
            }
        )
    return out


def codec_times(
    codec: Any, mem: LatentSpatialMemory, stream: BenchStream, poses: list[Tensor]
) -> dict[str, Any]:
    """The codec on ``mem``: per view size, the renders a prediction takes (latent grid + fine)
    and the decode, eager and, on CUDA, replayed from a CUDA graph (``Predictor``'s default)."""
    from mirage_ros.core.cuda_graph import GraphedDecode
    from mirage_ros.core.predictor import render_for_codec

    device = next(codec.parameters()).device
    out: dict[str, Any] = {"codec_id": codec.codec_id}
    graphed = GraphedDecode(codec) if GraphedDecode.usable(codec) else None
    for label, (gw, gh) in {"640x480": (640, 480), "320x240": (320, 240)}.items():
        K = scale_intrinsics(stream.K, gw / stream.width, gh / stream.height)
        render_for_codec(codec, mem, K, poses[0], gh, gw)  # warm-up
        timed = [_timed_result(device, render_for_codec, codec, mem, K, T, gh, gw) for T in poses]
        inputs = [(r.latents, r.coverage, r.depth_m, gh, gw, r.offset, f) for _, (r, f) in timed]
        entry: dict[str, Any] = {"render_for_codec_ms": _pct([ms for ms, _ in timed])}
        with torch.inference_mode():
            codec.decode(*inputs[0])  # warm-up
            entry["decode_ms"] = _pct([_timed(device, codec.decode, *a) for a in inputs])
            if graphed is not None:
                graphed(*inputs[0])  # captures this size's graph
                reps = [a for a in inputs for _ in range(5)]
                entry["decode_cuda_graph_ms"] = _pct([_timed(device, graphed, *a) for a in reps])
        out[label] = entry
    return out


def run_bench(
    *,
    device_name: str = "cpu",
    frames: int = 10_000,
    width: int = 320,
    height: int = 240,
    stride: int = 4,
    channels: int = 16,
    voxel_size_m: float = 0.05,
    near_voxel_size_m: float = MemoryConfig.near_voxel_size_m,
    max_memory_mb: float = 256.0,
    ref_frames: int = 300,
    lap_frames: int = 500,
    render_views: int = 10,
    scaling_voxels: tuple[int, ...] = (),
    seed: int = 0,
    codec_weights: str | None = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return the JSON-compatible report.

    ``codec_weights``: the codec timed on our memory ("" = the shipped one, None = none).
    ``near_voxel_size_m``: our memory's near level (0 = none).
    """
    device = resolve_device(device_name)
    if frames < 1 or ref_frames < 0 or lap_frames < 2 or render_views < 1:
        raise ConfigError("frames >= 1, ref_frames >= 0, lap_frames >= 2, render_views >= 1")
    stream = BenchStream(width, height, stride, channels, lap_frames, device, seed)
    cfg = MemoryConfig(
        voxel_size_m=voxel_size_m,
        near_voxel_size_m=near_voxel_size_m,
        latent_channels=channels,
        max_memory_mb=max_memory_mb,
        device=str(device),
    )
    ours = LatentSpatialMemory(cfg, codec_id="bench")
    append = AppendLatentCloud(
        PointCloudConfig(
            channels=channels,
            feature_dtype="float16",
            point_size_m=voxel_size_m,
            device=str(device),
        )
    )
    pixel = PixelPointCloud(
        PointCloudConfig(channels=3, feature_dtype="uint8", point_size_m=0.01, device=str(device))
    )
    checkpoints = sorted(
        {n for n in (10, 30, 100, 300, 1000, 3000, 10_000, 30_000) if n < frames} | {frames}
    )
    t_int: dict[str, list[float]] = {"ours": [], "append_latent_cloud": [], "pixel_cloud": []}
    curve: dict[str, list[dict[str, Any]]] = {k: [] for k in t_int}
    cells_total = pixels_total = 0
    K_lat = stream.K_latent
    t_start = time.perf_counter()
    for i in range(frames):
        fr = stream.frame(i)
        stamp = i * 33_333_333
        lat_args = (fr["latents"], fr["depth_latent"], K_lat, fr["T"], stamp)
        t_int["ours"].append(_timed(device, ours.integrate, *lat_args))
        d_lat = fr["depth_latent"]
        n_cells = int(((d_lat >= cfg.min_depth_m) & (d_lat <= cfg.max_depth_m)).sum())
        n_pix = int(((fr["depth"] >= 0.1) & (fr["depth"] <= 10.0)).sum())
        cells_total += n_cells
        pixels_total += n_pix
        if i < ref_frames:
            t_int["append_latent_cloud"].append(_timed(device, append.integrate, *lat_args))
            pix_args = (fr["rgb"], fr["depth"], stream.K, fr["T"], stamp)
            t_int["pixel_cloud"].append(_timed(device, pixel.integrate, *pix_args))
        if i + 1 in checkpoints:
            n = i + 1
            measured = n <= ref_frames
            curve["ours"].append(
                {
                    "frames": n,
                    "bytes": ours.memory_bytes,
                    "voxels": ours.num_voxels,
                    "measured": True,
                }
            )
            a_bytes = (
                append.memory_bytes if measured else cells_total * (12 + 2 * channels + 4) + 8 * n
            )
            p_bytes = pixel.memory_bytes if measured else pixels_total * (12 + 3 + 4) + 8 * n
            curve["append_latent_cloud"].append(
                {"frames": n, "bytes": a_bytes, "measured": measured}
            )
            curve["pixel_cloud"].append({"frames": n, "bytes": p_bytes, "measured": measured})
            if progress is not None:
                progress(
                    f"frame {n}/{frames}: ours {ours.memory_bytes / 2**20:.1f} MiB, "
                    f"{ours.num_voxels} voxels, {time.perf_counter() - t_start:.0f} s"
                )
    poses = [stream.pose(int(j * lap_frames / render_views) + 7) for j in range(render_views)]
    grids = {"640x480": (640, 480), "320x240": (320, 240)}
    report_mem: dict[str, dict[str, Any]] = {}
    for name, mem in (("ours", ours), ("append_latent_cloud", append), ("pixel_cloud", pixel)):
        entry: dict[str, Any] = {"integrate_ms": _pct(t_int[name]), "bytes_curve": curve[name]}
        # integrate cost between consecutive checkpoints: flat means no growth with frames
        bounds = [0] + [c["frames"] for c in curve[name]]
        entry["integrate_ms_by_window"] = [
            {"frames": [lo, hi], **_pct(t_int[name][lo:hi])}
            for lo, hi in itertools.pairwise(bounds)
            if lo < len(t_int[name])
        ]
        renders: dict[str, Any] = {}
        for label, (gw, gh) in grids.items():
            s = 1 if name == "pixel_cloud" else stride
            Kg = scale_intrinsics(stream.K, gw / width / s, gh / height / s)
            hw = (gh // s, gw // s)
            views = poses if name == "ours" else poses[:3]  # the references are slow to render
            renders[label] = {"grid": [hw[1], hw[0]], **_render_times(mem, Kg, views, *hw, device)}
        Tb = torch.stack([stream.pose(int(j * lap_frames / 16)) for j in range(16)])
        s = 1 if name == "pixel_cloud" else stride
        K16 = scale_intrinsics(stream.K, 640 / width / s, 480 / height / s)
        hw16 = (480 // s, 640 // s)
        repeats = 3 if name == "ours" else 1
        if name == "ours":
            mem.render(K16, Tb, *hw16)  # warm-up
        renders["batched16_640x480"] = {
            "grid": [hw16[1], hw16[0]],
            **_pct([_timed(device, mem.render, K16, Tb, *hw16) for _ in range(repeats)]),
        }
        entry["render_ms"] = renders
        entry["final_bytes"] = curve[name][-1]["bytes"]
        report_mem[name] = entry
    ours_bytes = report_mem["ours"]["final_bytes"]
    ratios = {
        f"{k}_over_ours": report_mem[k]["final_bytes"] / max(ours_bytes, 1)
        for k in ("append_latent_cloud", "pixel_cloud")
    }
    lap_curve = [c for c in curve["ours"] if c["frames"] >= lap_frames]
    codec_report: dict[str, Any] = {"skipped": "--no-codec"}
    if codec_weights is not None:
        from mirage_ros.core.codec import load_codec

        codec = load_codec(codec_weights or None, device=device).eval()
        if codec.config.latent_channels != channels:
            codec_report = {
                "skipped": f"the codec has {codec.config.latent_channels} latent channels, "
                f"the stream {channels}"
            }
        else:
            if progress is not None:
                progress(f"codec {codec.codec_id} on our memory")
            codec_report = codec_times(codec, ours, stream, poses)
    if progress is not None and scaling_voxels:
        progress(f"scaling runs at {list(scaling_voxels)} voxels")
    big = dataclasses.replace(cfg, max_memory_mb=max(cfg.max_memory_mb, 4096.0))
    scale_report = scaling(stream, big, list(scaling_voxels), 21, device) if scaling_voxels else []
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "stream": {
            "resolution": [width, height],
            "stride": stride,
            "latent_grid": [width // stride, height // stride],
            "frames": frames,
            "lap_frames": lap_frames,
            "ref_frames_measured": min(ref_frames, frames),
        },
        "config": cfg.to_dict(),
        "memories": report_mem,
        "ratios_at_final_frames": ratios,
        "ours_stats": ours.stats(),
        "ours_growth_after_first_lap_bytes": (
            lap_curve[-1]["bytes"] - lap_curve[0]["bytes"] if len(lap_curve) >= 2 else None
        ),
        "scaling": scale_report,
        "codec": codec_report,
        "wall_s": time.perf_counter() - t_start,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirage bench``."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--frames", type=int, default=10_000, help="frames of the stream")
    parser.add_argument("--quick", action="store_true", help="tiny run (60 frames, 160x120)")
    parser.add_argument(
        "--resolution", default=None, help="camera WIDTHxHEIGHT (default 320x240; quick 160x120)"
    )
    parser.add_argument("--stride", type=int, default=4, help="latent stride of the encoder")
    parser.add_argument("--channels", type=int, default=16, help="latent channels")
    parser.add_argument("--voxel-size", type=float, default=0.05, help="voxel size (m)")
    parser.add_argument(
        "--near-voxel-size",
        type=float,
        default=MemoryConfig.near_voxel_size_m,
        help="voxel size (m) of the near level (0 = none)",
    )
    parser.add_argument("--max-memory-mb", type=float, default=256.0, help="our memory budget")
    parser.add_argument(
        "--ref-frames",
        type=int,
        default=300,
        help="frames integrated into the reference memories (bytes beyond are computed)",
    )
    parser.add_argument("--lap-frames", type=int, default=500, help="frames per trajectory lap")
    parser.add_argument("--render-views", type=int, default=10, help="views timed per grid")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--scaling-voxels",
        default="100000,1000000",
        help="comma-separated voxel counts for the cost-vs-memory-size runs ('' = none)",
    )
    parser.add_argument(
        "--codec-weights", default="", help="codec timed on our memory (default: the shipped one)"
    )
    parser.add_argument("--no-codec", action="store_true", help="do not time the codec")
    parser.add_argument("--out", type=Path, default=Path("bench.json"), help="output JSON file")


def run(args: argparse.Namespace) -> int:
    """Run ``mirage bench``; writes the JSON file and prints a summary."""
    resolution = args.resolution or ("160x120" if args.quick else "320x240")
    try:
        width, height = (int(x) for x in str(resolution).lower().split("x"))
    except ValueError as exc:
        raise ConfigError(f"--resolution must look like 320x240, got {args.resolution!r}") from exc
    torch.set_num_threads(max(1, int(args.threads)))
    frames, ref_frames, lap, views = (
        args.frames,
        args.ref_frames,
        args.lap_frames,
        args.render_views,
    )
    scaling_voxels = tuple(int(x) for x in str(args.scaling_voxels).split(",") if x.strip())
    if args.quick:
        scaling_voxels = tuple(min(n, 2000) for n in scaling_voxels[:1])
        frames, ref_frames, lap, views = min(frames, 60), min(ref_frames, 20), 30, 2
    report = run_bench(
        device_name=args.device,
        frames=frames,
        width=width,
        height=height,
        stride=args.stride,
        channels=args.channels,
        voxel_size_m=args.voxel_size,
        near_voxel_size_m=args.near_voxel_size,
        max_memory_mb=args.max_memory_mb,
        ref_frames=ref_frames,
        scaling_voxels=scaling_voxels,
        lap_frames=lap,
        render_views=views,
        codec_weights=None if args.no_codec else str(args.codec_weights),
        progress=lambda m: print(m, flush=True),
    )
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out)
    summary = {
        name: {
            "integrate_ms_p50": m["integrate_ms"].get("p50"),
            "render_ms_p50": {k: v.get("p50") for k, v in m["render_ms"].items()},
            "final_bytes": m["final_bytes"],
        }
        for name, m in report["memories"].items()
    }
    print(
        json.dumps(
            {
                "device": report["device"],
                "summary": summary,
                "ratios": report["ratios_at_final_frames"],
                "codec_decode_ms_p50": {
                    k: {m: v[m]["p50"] for m in v if m.startswith("decode")}
                    for k, v in report["codec"].items()
                    if isinstance(v, dict)
                },
                "out": str(out),
            },
            indent=2,
        )
    )
    return 0
