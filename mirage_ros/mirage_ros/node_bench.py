"""`mirage bench-node`: the node's ingest rate and predict_views round trip, over DDS.

Phase 1 (ingest): a synthetic RGB-D camera (default 10 Hz 320x240) + 100 Hz /tf into
``mirage_node`` in its own process, no requests; does it integrate every frame with a bounded
queue? Phase 2 (round trip): one-view ``~/predict_views`` calls at 640x480, one at a time; the
client's round trip split into the node's render+decode time and the rest (messages + DDS).
It is the soak's load generator (:mod:`mirage_ros.soak`) with these defaults. Prints JSON and
writes it to ``--out``. A ROS client: imports rclpy when run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from mirage_ros import soak

__all__ = ["add_arguments", "run", "summarize"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    soak.add_arguments(parser)
    parser.set_defaults(
        duration_s=30.0,
        camera_hz=10.0,
        predict_hz=0.0,
        save_period_s=1e9,
        budget_mb=256.0,
        roundtrip_views=50,
        out=Path("bench_output/node_bench.json"),
    )


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the node benchmark is for, from a soak report."""
    ingest = report["ingest"]
    published, integrated = ingest["frames_published"], ingest["frames_integrated"]
    dropped = report["dropped_queue_full"] + report["dropped_unpaired"]
    return {
        "load": report["load"],
        "ingest": {
            "frames_published": published,
            "frames_integrated": integrated,
            "frames_dropped": dropped,
            "queue_max": report["queue_max"],
            "node_integrate_ms_p50": ingest.get("node_integrate_ms_p50"),
            "keeps_up": integrated is not None and integrated >= published and dropped == 0,
        },
        "roundtrip": report.get("roundtrip"),
        "node_thread_cpu_s": report.get("node_thread_cpu_s"),
        "failed_calls": report["failed_calls"],
    }


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    report = soak.soak(args)
    summary = summarize(report)
    summary["soak_report"] = {k: v for k, v in report.items() if k != "samples"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "soak_report"}, indent=2))
    return 0 if summary["ingest"]["keeps_up"] and summary["failed_calls"] == 0 else 1
