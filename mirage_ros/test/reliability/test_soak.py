"""The 60-second soak: camera 30 Hz + TF 100 Hz + predictions 5 Hz + saves, against a real node.

The full-length run is `mirage soak` (default 10 minutes); this is the same script, shorter.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from mirage_ros.soak import soak

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_sixty_second_soak_stays_bounded_and_answers_every_call(tmp_path: Path) -> None:
    from mirage_ros.soak import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)  # the defaults of `mirage soak`: 30 Hz 320x240, 100 Hz TF, 5 Hz requests
    args = parser.parse_args(
        ["--duration-s", "60", "--save-period-s", "20", "--out", str(tmp_path / "soak.json")]
    )
    args.weights = os.environ.get("MIRAGE_TEST_WEIGHTS", "")
    report = soak(args)
    assert report["failed_calls"] == 0, (report["calls"], report["failure_messages"])
    assert report["calls"]["predict_ok"] >= 100
    assert report["calls"]["save_ok"] >= 2
    assert report["memory_within_budget"]
    assert report["memory_bytes_max"] <= report["budget_bytes"]
    assert report["queue_max"] <= 8  # the node's queue_size: bounded
    assert report["frames_integrated"] > 100
    assert report["dropped_unpaired"] == 0  # camera_info, depth and /tf all arrived in time
    # RSS may not keep growing once the memory is at its budget
    assert report["rss_growth_second_half_mb"] < 64
    assert report["device_memory_growth_second_half_mb"] < 64  # 0 on CPU


def test_node_benchmark_reports_ingest_and_a_split_round_trip(tmp_path: Path) -> None:
    """`mirage bench-node` in small: the frames of a 10 Hz camera accounted for and judged, and
    the round trip split into the node's render+decode time and the rest."""
    from mirage_ros import node_bench

    parser = argparse.ArgumentParser()
    node_bench.add_arguments(parser)
    args = parser.parse_args(
        [
            "--duration-s",
            "8",
            "--resolution",
            "160x120",
            "--roundtrip-views",
            "5",
            "--roundtrip-resolution",
            "320x240",
            "--out",
            str(tmp_path / "node_bench.json"),
        ]
    )
    args.weights = os.environ.get("MIRAGE_TEST_WEIGHTS", "")
    summary = node_bench.summarize(soak(args))
    ingest, rt = summary["ingest"], summary["roundtrip"]
    assert ingest["frames_published"] >= 60
    # whether it keeps up is the benchmark's figure, not this test's: on a loaded 2-core CI host a
    # best-effort camera message can be lost before the node sees it (it never counts it); the
    # accounting and the verdict's logic are checked instead
    published, integrated = ingest["frames_published"], ingest["frames_integrated"]
    assert 0.5 * published <= integrated <= published, ingest
    assert ingest["keeps_up"] == (integrated >= published and ingest["frames_dropped"] == 0)
    assert summary["failed_calls"] == 0
    assert rt["views"] == 5
    assert 0 < rt["node_render_decode_ms_p50"] <= rt["client_round_trip_ms_p50"]
    assert rt["transport_and_messages_ms_p50"] >= 0
