"""Bag reading on tiny bags written here (bagutil): every storage and depth encoding, exact
interpolated poses, stamp pairing, and every bad input raising its typed error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bagutil import DEPTH, INFO, RGB, BagSpec, write_empty_bag, write_test_bag
from mirage_ros.bag import BagFrame, FrameStats, bag_summary, open_bag, read_frames
from mirage_ros.core.errors import BagError, ConversionError, EncodingError, TransformError


def _path(tmp: Path, spec: BagSpec, name: str = "bag") -> Path:
    return tmp / (f"{name}.bag" if spec.storage == "rosbag1" else name)


def _record(tmp: Path, spec: BagSpec) -> tuple[Path, list]:
    path = _path(tmp, spec)
    return path, write_test_bag(path, spec)


def _read(path: Path, depth: str | None = DEPTH, **kw: object) -> list[BagFrame]:
    return list(read_frames([path], RGB, depth, INFO, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("storage", "depth"),
    [("mcap", "16UC1"), ("sqlite3", "32FC1"), ("rosbag1", "16UC1"), ("rosbag1", "32FC1")],
)
def test_frames_come_back_with_interpolated_poses_and_exact_images(
    tmp_path: Path, storage: str, depth: str
) -> None:
    path, truth = _record(tmp_path, BagSpec(storage=storage, depth_encoding=depth))
    stats = FrameStats()
    frames = _read(path, stats=stats)
    assert len(frames) == len(truth) == stats.yielded == stats.color
    for got, want in zip(frames, truth, strict=True):
        assert got.stamp_ns == want.stamp_ns
        assert np.array_equal(got.rgb, want.rgb)
        assert got.depth_m is not None and got.depth_m.dtype == np.float32
        assert np.allclose(got.depth_m, want.depth_m, atol=1e-6)
        assert got.depth_m[0, 0] == 0.0  # invalid stays 0 in both encodings
        assert np.allclose(got.K, want.K)
        assert np.allclose(got.T_world_camera, want.T_world_camera, atol=1e-9)
        assert got.frame_id == "camera_optical"


def test_a_single_mcap_file_and_topics_without_slash_are_read(tmp_path: Path) -> None:
    path, truth = _record(tmp_path, BagSpec(color_encoding="bgr8"))
    mcap = next(path.glob("*.mcap"))
    frames = list(read_frames([mcap], RGB.lstrip("/"), DEPTH.lstrip("/"), INFO.lstrip("/")))
    assert [f.stamp_ns for f in frames] == [t.stamp_ns for t in truth]
    assert np.array_equal(frames[0].rgb, truth[0].rgb)  # bgr8 comes back as RGB


def test_depth_is_paired_by_nearest_stamp_within_the_slop(tmp_path: Path) -> None:
    path, truth = _record(tmp_path, BagSpec(depth_offset_ns=5_000_000))
    assert len(_read(path, depth_slop_ns=10_000_000)) == len(truth)
    stats = FrameStats()
    assert _read(path, depth_slop_ns=1_000_000, stats=stats) == []
    assert stats.skipped_no_depth == len(truth)


def test_depth_recorded_late_is_still_paired_and_frames_stay_in_stamp_order(
    tmp_path: Path,
) -> None:
    # depth logged 0.25 s after its stamp: two later color frames are recorded before it
    path, truth = _record(tmp_path, BagSpec(frames=8, depth_log_delay_ns=250_000_000))
    frames = _read(path)
    assert [f.stamp_ns for f in frames] == [t.stamp_ns for t in truth]
    for got, want in zip(frames, truth, strict=True):
        assert got.depth_m is not None and np.allclose(got.depth_m, want.depth_m, atol=1e-6)


def test_without_a_depth_topic_frames_have_no_depth(tmp_path: Path) -> None:
    path, truth = _record(tmp_path, BagSpec(depth_encoding=None))
    frames = _read(path, depth=None)
    assert len(frames) == len(truth) and all(f.depth_m is None for f in frames)


def test_max_frames_stops_early(tmp_path: Path) -> None:
    path, _ = _record(tmp_path, BagSpec())
    assert len(_read(path, max_frames=3)) == 3


def test_summary_and_open_bag_list_topics_types_and_counts(tmp_path: Path) -> None:
    spec = BagSpec(storage="sqlite3", frames=5, fps=10.0)
    path, _ = _record(tmp_path, spec)
    summary = bag_summary(path)
    assert summary["topics"][RGB] == {"type": "sensor_msgs/msg/Image", "count": 5}
    assert summary["topics"]["/tf_static"]["count"] == 1
    assert summary["duration_s"] >= 0.4
    with open_bag([path]) as bag:
        assert set(bag.topics()) == {RGB, DEPTH, INFO, "/tf", "/tf_static"}
        assert bag.message_count == summary["messages"]


def test_missing_topic_lists_the_topics_that_exist(tmp_path: Path) -> None:
    path, _ = _record(tmp_path, BagSpec())
    with pytest.raises(BagError, match=r"'/cam/rgb' not found; the bag has: .*/camera/color"):
        list(read_frames([path], "/cam/rgb", DEPTH, INFO))
    with pytest.raises(BagError, match="depth topic"):
        list(read_frames([path], RGB, "/nope", INFO))


def test_unknown_fixed_frame_names_the_frames_in_tf(tmp_path: Path) -> None:
    path, _ = _record(tmp_path, BagSpec())
    with pytest.raises(TransformError, match=r"frames in the bag's TF: base_link, .*map, odom"):
        _read(path, fixed_frame="world")


def test_no_tf_path_from_the_camera_is_a_transform_error(tmp_path: Path) -> None:
    path, _ = _record(tmp_path, BagSpec(with_tf=False))  # only base_link -> camera
    with pytest.raises(TransformError, match=r"camera_optical.*'map'"):
        _read(path)


def test_missing_empty_and_zero_byte_bags_are_bag_errors(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        _read(tmp_path / "nope")
    with pytest.raises(BagError, match="no bag"):
        list(read_frames([], RGB, DEPTH, INFO))
    write_empty_bag(tmp_path / "empty")
    with pytest.raises(BagError, match="holds no messages"):
        _read(tmp_path / "empty")
    (tmp_path / "zero.bag").write_bytes(b"")
    with pytest.raises(BagError):
        _read(tmp_path / "zero.bag")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "rosbag1"])
def test_truncated_bags_are_bag_errors(tmp_path: Path, storage: str) -> None:
    path, _ = _record(tmp_path, BagSpec(storage=storage))
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.suffix != ".yaml"]
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(BagError, match=r"cannot read|truncated|corrupt"):
        _read(path)


def test_unsupported_color_encoding_is_an_encoding_error(tmp_path: Path) -> None:
    path, _ = _record(tmp_path, BagSpec(color_encoding="yuv422"))
    with pytest.raises(EncodingError, match="supported: rgb8"):
        _read(path)


def test_image_and_camera_info_size_mismatch_is_a_conversion_error(tmp_path: Path) -> None:
    spec = BagSpec()
    path, _ = _record(tmp_path, replace(spec, info_size=(spec.width + 2, spec.height)))
    with pytest.raises(ConversionError, match="camera_info says"):
        _read(path)


def test_bad_pairing_arguments_are_refused(tmp_path: Path) -> None:
    path, _ = _record(tmp_path, BagSpec(frames=1))
    with pytest.raises(BagError, match=">= 0"):
        _read(path, depth_slop_ns=-1)
