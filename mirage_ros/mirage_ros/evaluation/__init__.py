"""``mirage eval``: rosbag replay evaluation of the memory next to two reference memories.

``command`` is the CLI (``add_arguments``/``run``, re-exported here for ``mirage_ros.cli``),
``protocol`` the held-out protocol and the three memories, ``metrics`` the image/depth metrics,
``report`` the files written (metrics.json, frames.csv, index.html, PNGs).
"""

from __future__ import annotations

from mirage_ros.evaluation.command import add_arguments, run
from mirage_ros.evaluation.metrics import depth_abs_rel, psnr, spearman, ssim, ssim_map
from mirage_ros.evaluation.protocol import (
    CLASSES,
    MEMORIES,
    EvalConfig,
    Evaluator,
    FrameRecord,
    Prediction,
    resize_frame,
)

__all__ = [
    "CLASSES",
    "MEMORIES",
    "EvalConfig",
    "Evaluator",
    "FrameRecord",
    "Prediction",
    "add_arguments",
    "depth_abs_rel",
    "psnr",
    "resize_frame",
    "run",
    "spearman",
    "ssim",
    "ssim_map",
]
