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
    args = argparse.Namespace(
        duration_s=60.0,
        out=tmp_path / "soak.json",
        camera_hz=30.0,
        tf_hz=100.0,
        predict_hz=5.0,
        save_period_s=20.0,
        resolution="320x240",
        budget_mb=2.0,
        device="cpu",
        weights=os.environ.get("MIRAGE_TEST_WEIGHTS", ""),
    )
    report = soak(args)
    assert report["failed_calls"] == 0, report["calls"]
    assert report["calls"]["predict_ok"] >= 100
    assert report["calls"]["save_ok"] >= 2
    assert report["memory_within_budget"]
    assert report["memory_bytes_max"] <= report["budget_bytes"]
    assert report["queue_max"] <= 8  # the node's queue_size: bounded
    assert report["frames_integrated"] > 100
    assert report["dropped_unpaired"] == 0  # camera_info, depth and /tf all arrived in time
    # RSS may not keep growing once the memory is at its budget
    assert report["rss_growth_second_half_mb"] < 64
