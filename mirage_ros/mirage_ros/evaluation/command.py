"""``mirage eval BAG [BAG ...] --out DIR``: replay rosbags through the memory and the references.

Reads the bags with :func:`mirage_ros.bag.read_frames` (poses from the node's TransformBuffer),
drives :class:`Evaluator` in-process and deterministically, and writes metrics.json, frames.csv,
index.html and its PNGs. Every bad input raises a :class:`MirageError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mirage_ros.core.codec import DEFAULT_WEIGHTS, Codec, load_codec
from mirage_ros.core.config import MemoryConfig, resolve_device
from mirage_ros.core.errors import BagError, ConfigError
from mirage_ros.evaluation.protocol import EvalConfig, Evaluator, resize_frame
from mirage_ros.evaluation.report import (
    GridWriter,
    write_frames_csv,
    write_html,
    write_metrics_json,
    write_plots,
)

__all__ = ["add_arguments", "parse_resolution", "run"]

RGB_TOPIC = "camera/color/image_raw"
DEPTH_TOPIC = "camera/depth/image_raw"
INFO_TOPIC = "camera/color/camera_info"


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """'WxH' -> (W, H); None/'native' -> None."""
    if text is None or text == "native":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or not (8 <= int(m.group(1)) <= 8192 and 8 <= int(m.group(2)) <= 8192):
        raise ConfigError(f"--resolution must be WxH with 8..8192 px each, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirage eval``."""
    d, m = EvalConfig(), MemoryConfig()
    parser.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="rosbag2 or ROS 1 bags")
    parser.add_argument("--out", type=Path, required=True, help="report folder (created)")
    parser.add_argument("--rgb-topic", default=RGB_TOPIC, help="color image topic")
    parser.add_argument("--depth-topic", default=DEPTH_TOPIC, help="depth image topic")
    parser.add_argument("--info-topic", default=INFO_TOPIC, help="color CameraInfo topic")
    parser.add_argument("--fixed-frame", default="map", help="world frame of the poses")
    parser.add_argument(
        "--holdout-every", type=int, default=d.holdout_every, metavar="K",
        help="hold out every K-th frame (index %% K == K-1)",
    )  # fmt: skip
    parser.add_argument(
        "--holdout-run", type=int, default=d.holdout_run, metavar="N",
        help="hold out runs of N consecutive frames (every K-th run); N > 1 measures revisits",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument(
        "--weights", default=None,
        help="codec weights file, or 'untrained' (a codec PCA-initialised on the first frame); "
        "default: the shipped weights, or 'untrained' where none are shipped",
    )  # fmt: skip
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--resolution", default=None, help="resize on input, WxH (default native)")
    parser.add_argument(
        "--no-references", action="store_true", help="run only our memory (no reference memories)"
    )
    parser.add_argument(
        "--reference-budget", choices=("equal", "unbounded"), default=d.reference_budget,
        help="pixel cloud bytes <= ours at every moment ('equal') or unbounded",
    )  # fmt: skip
    parser.add_argument(
        "--recent-window-s", type=float, default=d.recent_window_s,
        help="held-out views whose covered content was seen within this many s are 'recent'",
    )  # fmt: skip
    parser.add_argument(
        "--novel-coverage", type=float, default=d.novel_coverage,
        help="held-out views with less memory coverage than this fraction are 'novel'",
    )  # fmt: skip
    parser.add_argument(
        "--voxel-size-m", type=float, default=m.voxel_size_m, help="our memory's voxel size (m)"
    )
    parser.add_argument(
        "--near-voxel-size-m", type=float, default=m.near_voxel_size_m,
        help="our memory's voxel size for cells seen nearer than --near-depth-m (0 = one size)",
    )  # fmt: skip
    parser.add_argument(
        "--near-depth-m", type=float, default=m.near_depth_m,
        help="cells nearer than this camera depth (m) go into the near voxels",
    )  # fmt: skip
    parser.add_argument(
        "--max-memory-mb", type=float, default=m.max_memory_mb, help="our memory's budget (MiB)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")


def _codec(weights: str | None, device: str, first_rgb: Any) -> tuple[Codec, dict[str, Any]]:
    """The codec to evaluate with and what it is (for metrics.json)."""
    if weights is not None and weights != "untrained":
        codec = load_codec(Path(weights), device)
        return codec, {"source": str(weights), "codec_id": codec.codec_id, "trained": True}
    if weights is None and DEFAULT_WEIGHTS.is_file():
        codec = load_codec(None, device)
        return codec, {"source": str(DEFAULT_WEIGHTS), "codec_id": codec.codec_id, "trained": True}
    torch.manual_seed(0)
    codec = Codec()
    rgb = torch.tensor(first_rgb).permute(2, 0, 1)[None].float() / 255.0
    codec.init_linear_from_pca(rgb)
    codec = codec.to(resolve_device(device)).eval()
    source = "untrained codec, PCA-initialised on the first frame"
    if weights is None:
        source += " (no shipped weights found)"
    return codec, {"source": source, "codec_id": codec.codec_id, "trained": False}


def _expected_frames(paths: list[Path], topic: str, max_frames: int | None) -> int | None:
    from mirage_ros.bag import bag_summary

    count = bag_summary(paths)["topics"].get("/" + topic.lstrip("/"), {}).get("count")
    if count is None:
        return max_frames
    return min(count, max_frames) if max_frames is not None else int(count)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and write the report; returns 0."""
    from mirage_ros.bag import FrameStats, read_frames

    t_start = time.perf_counter()
    resolution = parse_resolution(args.resolution)
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    memory_cfg = MemoryConfig(
        voxel_size_m=args.voxel_size_m, near_voxel_size_m=args.near_voxel_size_m,
        near_depth_m=args.near_depth_m, max_memory_mb=args.max_memory_mb, device=args.device,
    )  # fmt: skip
    config = EvalConfig(
        holdout_every=args.holdout_every, holdout_run=args.holdout_run,
        recent_window_s=args.recent_window_s,
        novel_coverage=args.novel_coverage, reference_budget=args.reference_budget,
        references=not args.no_references, memory=memory_cfg,
    )  # fmt: skip
    device = resolve_device(args.device)
    paths = [Path(p) for p in args.bags]
    stats = FrameStats()
    frames = read_frames(
        paths, args.rgb_topic, args.depth_topic, args.info_topic,
        fixed_frame=args.fixed_frame, max_frames=args.max_frames, stats=stats,
    )  # fmt: skip
    first = next(frames, None)
    if first is None:
        raise BagError(
            f"no usable frames in {', '.join(map(str, paths))}: {stats.color} color images, "
            f"{stats.skipped_no_depth} without depth, {stats.skipped_no_camera_info} without "
            f"camera info, {stats.skipped_no_transform} without a transform to "
            f"{args.fixed_frame!r}"
        )
    codec, codec_info = _codec(args.weights, args.device, first.rgb)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {out_dir}: {exc}") from exc
    grids = GridWriter(out_dir)
    evaluator = Evaluator(config, codec, on_heldout=grids)
    total = _expected_frames(paths, args.rgb_topic, args.max_frames)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="frame", desc="mirage eval", disable=args.quiet, file=sys.stderr)
    n = 0
    try:
        for index, f in enumerate(itertools.chain([first], frames)):
            if f.depth_m is None:
                raise BagError(f"frame at {f.stamp_ns} ns has no depth; give --depth-topic")
            rgb, depth_m, K = f.rgb, f.depth_m, f.K
            if resolution is not None:
                rgb, depth_m, K = resize_frame(rgb, depth_m, K, *resolution)
            evaluator.step(index, f.stamp_ns, rgb, depth_m, K, f.T_world_camera)
            n += 1
            bar.update(1)
    except BaseException:
        grids.discard()
        raise
    bar.close()
    wall_s = time.perf_counter() - t_start
    summary = evaluator.summary()
    summary["config"] = {
        **config.to_dict(),
        "rgb_topic": args.rgb_topic, "depth_topic": args.depth_topic,
        "info_topic": args.info_topic, "fixed_frame": args.fixed_frame,
        "max_frames": args.max_frames,
        "resolution": None if resolution is None else f"{resolution[0]}x{resolution[1]}",
        "weights": args.weights,
    }  # fmt: skip
    summary["device"] = str(device)
    summary["bag"] = [str(p) for p in paths]
    summary["codec"] = codec_info
    summary["frames_read"] = n
    summary["frames_skipped"] = {
        "no_transform": stats.skipped_no_transform, "no_depth": stats.skipped_no_depth,
        "no_camera_info": stats.skipped_no_camera_info,
    }  # fmt: skip
    summary["wall_s"] = wall_s
    summary["fps"] = n / wall_s if wall_s > 0 else None
    chosen = grids.finish(evaluator.records)
    summary["grids"] = chosen
    plots = write_plots(out_dir, evaluator.records, evaluator.timeline, evaluator.memories)
    write_metrics_json(out_dir / "metrics.json", summary)
    write_frames_csv(out_dir / "frames.csv", evaluator.records, evaluator.memories)
    write_html(out_dir / "index.html", summary, plots, chosen, evaluator.memories)
    if not args.quiet:
        fr = summary["frames"]
        print(
            f"evaluated {n} frames ({fr['integrated']} integrated; held out {fr['recent']} recent,"
            f" {fr['revisit']} revisit, {fr['novel']} novel) in {wall_s:.1f} s -> "
            f"{out_dir / 'index.html'}"
        )
    return 0
