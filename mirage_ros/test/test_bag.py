"""Bag reading: every storage and depth encoding, poses equal the generator's, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mirage_ros.bag import FrameStats, bag_summary, read_frames
from mirage_ros.core.errors import BagError, TransformError
from mirage_ros.sim import SceneConfig, SyntheticSequence, write_bag

RGB, DEPTH, INFO = "camera/color/image_raw", "camera/depth/image_raw", "camera/color/camera_info"
N = 8


@pytest.fixture(scope="module")
def seq() -> SyntheticSequence:
    return SyntheticSequence(SceneConfig(seed=2, frames=N, width=48, height=36))


def _bag(tmp: Path, seq: SyntheticSequence, storage: str, depth: str = "16UC1", **kw: int) -> Path:
    path = tmp / f"bag_{storage}_{depth}{'.bag' if storage == 'rosbag1' else ''}"
    write_bag(seq, path, storage=storage, depth_encoding=depth, **kw)
    return path


@pytest.mark.parametrize(
    ("storage", "depth"), [("mcap", "16UC1"), ("sqlite3", "32FC1"), ("rosbag1", "16UC1")]
)
def test_frames_come_back_with_exact_poses_and_depth(tmp_path, seq, storage, depth) -> None:
    path = _bag(tmp_path, seq, storage, depth)
    stats = FrameStats()
    frames = list(read_frames([path], RGB, DEPTH, "/" + INFO, stats=stats))
    assert len(frames) == N and stats.yielded == N
    for got, want in zip(frames, seq, strict=True):
        assert got.stamp_ns == want.stamp_ns
        assert np.array_equal(got.rgb, want.rgb)
        assert np.allclose(got.T_world_camera, want.T_world_camera, atol=1e-6)
        assert np.allclose(got.K, want.K)
        assert got.depth_m is not None
        assert np.allclose(got.depth_m, want.depth_m, atol=1e-3)
        assert got.frame_id == "camera_color_optical_frame"


def test_depth_offset_within_slop_is_paired(tmp_path, seq) -> None:
    path = _bag(tmp_path, seq, "mcap", depth_offset_ns=5_000_000)
    assert len(list(read_frames([path], RGB, DEPTH, INFO, depth_slop_ns=10_000_000))) == N
    stats = FrameStats()
    assert list(read_frames([path], RGB, DEPTH, INFO, depth_slop_ns=1_000_000, stats=stats)) == []
    assert stats.skipped_no_depth == N


def test_max_frames_and_summary(tmp_path, seq) -> None:
    path = _bag(tmp_path, seq, "mcap")
    assert len(list(read_frames([path], RGB, None, INFO, max_frames=3))) == 3
    summary = bag_summary([path])
    assert summary["topics"]["/" + RGB]["count"] == N
    assert "/tf_static" in summary["topics"]


def test_missing_topic_lists_the_topics_that_exist(tmp_path, seq) -> None:
    path = _bag(tmp_path, seq, "mcap")
    with pytest.raises(BagError, match=r"'/cam/rgb' not found; the bag has: .*/camera/color"):
        list(read_frames([path], "/cam/rgb", DEPTH, INFO))


def test_no_tf_path_names_the_frames(tmp_path, seq) -> None:
    path = _bag(tmp_path, seq, "mcap")
    with pytest.raises(TransformError, match="frames in the bag's TF: base_link"):
        list(read_frames([path], RGB, DEPTH, INFO, fixed_frame="world"))


def test_missing_empty_and_truncated_bags_are_bag_errors(tmp_path, seq) -> None:
    with pytest.raises(BagError, match="does not exist"):
        list(read_frames([tmp_path / "nope"], RGB, DEPTH, INFO))
    path = _bag(tmp_path, seq, "mcap")
    mcap = next(path.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError):
        list(read_frames([path], RGB, DEPTH, INFO))
    empty = tmp_path / "empty.bag"
    empty.write_bytes(b"")
    with pytest.raises(BagError):
        list(read_frames([empty], RGB, DEPTH, INFO))
