"""Conversions on message fields: round trips, every encoding, and hostile input (fuzzed)."""

from __future__ import annotations

import array
import math
from types import SimpleNamespace as NS
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mirage_ros.core.errors import ConversionError, EncodingError, MirageError, PoseError

from mirage_ros import conversions as conv


def _image(h: int, w: int, encoding: str, data: bytes, step: int | None = None) -> NS:
    return NS(
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=step if step is not None else w * (len(data) // max(h * w, 1)),
        data=data,
    )


def _rgb(h: int = 5, w: int = 7) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_fill_then_read_color_round_trips(encoding: str) -> None:
    rgb = _rgb()
    msg = NS()
    conv.fill_image_msg(msg, rgb, encoding)
    assert np.array_equal(conv.image_from_msg(msg), rgb)


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("rgba8", lambda rgb: np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 9, np.uint8)], 2)),
        (
            "bgra8",
            lambda rgb: np.concatenate(
                [rgb[..., ::-1], np.zeros((*rgb.shape[:2], 1), np.uint8)], 2
            ),
        ),
    ],
)
def test_four_channel_encodings_drop_alpha_and_order_channels(encoding, make) -> None:
    rgb = _rgb()
    raw = make(rgb)
    msg = _image(5, 7, encoding, raw.tobytes(), step=7 * 4)
    assert np.array_equal(conv.image_from_msg(msg), rgb)


def test_mono8_becomes_grey_rgb_and_row_padding_is_ignored() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    padded = np.concatenate([grey, np.full((3, 4), 255, np.uint8)], axis=1)  # step = 8
    msg = _image(3, 4, "mono8", padded.tobytes(), step=8)
    out = conv.image_from_msg(msg)
    assert out.shape == (3, 4, 3)
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 2], grey)


@pytest.mark.parametrize(
    "container",
    [bytes, bytearray, lambda b: array.array("B", b), lambda b: np.frombuffer(b, np.uint8), list],
)
def test_data_containers_of_rclpy_and_rosbags_are_accepted(container) -> None:
    rgb = _rgb()
    msg = _image(5, 7, "rgb8", b"", step=21)
    msg.data = container(rgb.tobytes())
    assert np.array_equal(conv.image_from_msg(msg), rgb)


def test_depth_16uc1_is_millimetres_and_zero_stays_invalid() -> None:
    mm = np.array([[0, 1000], [2500, 65535]], dtype="<u2")
    msg = _image(2, 2, "16UC1", mm.tobytes(), step=4)
    depth = conv.depth_from_msg(msg)
    assert depth.dtype == np.float32
    assert np.allclose(depth, [[0.0, 1.0], [2.5, 65.535]])


def test_depth_16uc1_big_endian() -> None:
    mm = np.array([[1000, 2000]], dtype=">u2")
    msg = _image(1, 2, "16UC1", mm.tobytes(), step=4)
    msg.is_bigendian = 1
    assert np.allclose(conv.depth_from_msg(msg), [[1.0, 2.0]])


def test_depth_32fc1_invalid_values_become_zero() -> None:
    d = np.array([[1.5, math.nan], [math.inf, -1.0]], dtype="<f4")
    msg = NS()
    conv.fill_depth_msg(msg, d)
    assert conv.depth_from_msg(msg).tolist() == [[1.5, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize(
    ("msg", "error", "hint"),
    [
        (_image(2, 2, "yuv422", bytes(8), 4), EncodingError, "supported"),
        (_image(0, 2, "rgb8", b"", 6), ConversionError, "size"),
        (_image(2, 2, "rgb8", bytes(12), step=5), ConversionError, "step"),
        (_image(2, 2, "rgb8", bytes(11), step=6), ConversionError, "truncated"),
        (_image(20000, 2, "rgb8", bytes(6), step=6), ConversionError, "size"),
    ],
)
def test_bad_images_raise_typed_errors_naming_the_problem(msg, error, hint) -> None:
    with pytest.raises(error, match=hint):
        conv.image_from_msg(msg)


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(-3, 40),
    w=st.integers(-3, 40),
    step=st.integers(-5, 200),
    encoding=st.sampled_from(
        ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "16UC1", "32FC1", "", "RGB8", "weird"]
    ),
    data=st.binary(max_size=2000),
    big=st.booleans(),
)
def test_fuzzed_images_convert_or_raise_a_mirage_error(h, w, step, encoding, data, big) -> None:
    msg = NS(height=h, width=w, step=step, encoding=encoding, data=data, is_bigendian=big)
    for fn in (conv.image_from_msg, conv.depth_from_msg):
        try:
            out = fn(msg)
        except MirageError:
            continue
        assert out.shape[:2] == (h, w)
        assert np.isfinite(out).all()


def _info(k: list[float], w: int = 64, h: int = 48, d: list[float] | None = None) -> NS:
    return NS(width=w, height=h, k=k, d=d or [0.0] * 5, header=NS(frame_id="cam"))


def test_camera_info_round_trips() -> None:
    K = np.array([[50.0, 0, 31.5], [0, 52.0, 23.5], [0, 0, 1]])
    msg = NS()
    conv.fill_camera_info_msg(msg, K, 64, 48)
    K2, w, h = conv.intrinsics_from_camera_info(msg)
    assert np.array_equal(K2, K) and (w, h) == (64, 48)


@pytest.mark.parametrize(
    ("k", "hint"),
    [
        ([-5.0, 0, 32, 0, 50, 24, 0, 0, 1], "focal"),
        ([0.0, 0, 32, 0, 50, 24, 0, 0, 1], "focal"),
        ([math.nan, 0, 32, 0, 50, 24, 0, 0, 1], "NaN"),
        ([50.0, 0, 1e6, 0, 50, 24, 0, 0, 1], "principal"),
        ([50.0, 0, 32], "9 numbers"),
        ([50.0, 0, 32, 0, 50, 24, 0, 0, 2], "pinhole"),
    ],
)
def test_impossible_intrinsics_are_refused(k, hint) -> None:
    with pytest.raises(ConversionError, match=hint):
        conv.intrinsics_from_camera_info(_info(k))


def test_distortion_is_refused_unless_allowed() -> None:
    info = _info([50.0, 0, 32, 0, 50, 24, 0, 0, 1], d=[0.1, 0, 0, 0, 0])
    with pytest.raises(ConversionError, match="rectified"):
        conv.intrinsics_from_camera_info(info)
    assert conv.intrinsics_from_camera_info(info, allow_distortion=True)[1] == 64


def test_image_and_info_size_mismatch_is_reported() -> None:
    with pytest.raises(ConversionError, match="64x48"):
        conv.check_image_matches_info((40, 64), (64, 48))
    conv.check_image_matches_info((48, 64), (64, 48))


def _pose(x=0.0, y=0.0, z=0.0, qx=0.0, qy=0.0, qz=0.0, qw=1.0) -> NS:
    return NS(position=NS(x=x, y=y, z=z), orientation=NS(x=qx, y=qy, z=qz, w=qw))


@settings(max_examples=100, deadline=None)
@given(
    q=st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(
        lambda q: sum(v * v for v in q) > 0.1
    ),
    t=st.tuples(*[st.floats(-100, 100)] * 3),
)
def test_pose_round_trip_is_rigid_and_exact(q, t) -> None:
    n = math.sqrt(sum(v * v for v in q))
    msg = _pose(*t, *(v / n for v in q))
    T = conv.pose_from_msg(msg)
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
    out = _pose()
    conv.fill_pose_msg(out, T)
    assert np.allclose(conv.pose_from_msg(out), T, atol=1e-9)


@pytest.mark.parametrize(
    ("pose", "hint"),
    [
        (_pose(qw=0.0), "zero quaternion"),
        (_pose(qw=2.0), "not normalised"),
        (_pose(x=math.nan), "finite"),
        (_pose(qx=math.inf), "finite"),
    ],
)
def test_bad_poses_raise_pose_errors(pose, hint) -> None:
    with pytest.raises(PoseError, match=hint):
        conv.pose_from_msg(pose)


def test_stamps_round_trip_and_ros1_stamps_are_read() -> None:
    stamp = NS(sec=0, nanosec=0)
    conv.fill_stamp(stamp, 1_700_000_000_123_456_789)
    assert (stamp.sec, stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert conv.stamp_ns_from_msg(stamp) == 1_700_000_000_123_456_789
    assert conv.stamp_ns_from_msg(NS(secs=2, nsecs=5)) == 2_000_000_005
    with pytest.raises(ConversionError):
        conv.stamp_ns_from_msg(NS(sec=1, nanosec=2_000_000_000))


def test_point_cloud2_fields_pack_xyz_and_rgb() -> None:
    from rosbags.typesys import Stores, get_typestore

    types = get_typestore(Stores.ROS2_KILTED).types
    pc2_cls = types["sensor_msgs/msg/PointCloud2"]
    msg = pc2_cls(
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="map"
        ),
        height=0,
        width=0,
        fields=[],
        is_bigendian=False,
        point_step=0,
        row_step=0,
        data=np.zeros(0, np.uint8),
        is_dense=True,
    )
    xyz = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    rgb = np.array([[255, 0, 1], [2, 3, 4]], np.uint8)
    conv.fill_point_cloud2_msg(msg, xyz, rgb, types["sensor_msgs/msg/PointField"])
    rec = np.frombuffer(msg.data, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    assert rec["x"].tolist() == [1.0, 4.0] and rec["rgb"][0] == (255 << 16) | 1
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"]
    assert msg.width == 2 and msg.point_step == 16


# ---------------------------------------------------------------- message families
def _rosbags_types() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _rosbags_header(types: Any) -> Any:
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="cam"
    )


def test_filled_rosbags_messages_serialise_and_read_back() -> None:
    store = _rosbags_types()
    t = store.types
    img_cls, info_cls = t["sensor_msgs/msg/Image"], t["sensor_msgs/msg/CameraInfo"]
    empty = np.zeros(0, np.uint8)
    rgb = _rgb()
    image = img_cls(_rosbags_header(t), 0, 0, "", 0, 0, empty)
    conv.fill_image_msg(image, rgb, "bgr8")
    conv.fill_stamp(image.header.stamp, 12_000_000_345)
    image2 = store.deserialize_cdr(
        store.serialize_cdr(image, img_cls.__msgtype__), img_cls.__msgtype__
    )
    assert np.array_equal(conv.image_from_msg(image2), rgb)
    assert conv.stamp_ns_from_msg(image2.header.stamp) == 12_000_000_345

    depth = np.array([[0.5, np.nan], [2.0, 0.0]], np.float32)
    for encoding in ("32FC1", "16UC1"):
        d = img_cls(_rosbags_header(t), 0, 0, "", 0, 0, empty)
        conv.fill_depth_msg(d, depth, encoding)
        d2 = store.deserialize_cdr(store.serialize_cdr(d, img_cls.__msgtype__), img_cls.__msgtype__)
        assert conv.depth_from_msg(d2).tolist() == [[0.5, 0.0], [2.0, 0.0]]

    roi = t["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False)
    z9 = np.zeros(9)
    info = info_cls(_rosbags_header(t), 0, 0, "", np.zeros(0), z9, z9, np.zeros(12), 0, 0, roi)
    K = np.array([[50.0, 0, 3.5], [0, 52.0, 2.5], [0, 0, 1]])
    conv.fill_camera_info_msg(info, K, 7, 5)
    info2 = store.deserialize_cdr(
        store.serialize_cdr(info, info_cls.__msgtype__), info_cls.__msgtype__
    )
    K2, w, h = conv.intrinsics_from_camera_info(info2)
    assert np.array_equal(K2, K) and (w, h) == (7, 5)


def test_filled_rclpy_messages_keep_their_field_types_and_read_back() -> None:
    msgs = pytest.importorskip("sensor_msgs.msg")
    geometry = pytest.importorskip("geometry_msgs.msg")
    rgb = _rgb()
    image = msgs.Image()
    conv.fill_image_msg(image, rgb)
    assert isinstance(image.data, array.array)
    assert np.array_equal(conv.image_from_msg(image), rgb)
    depth = msgs.Image()
    conv.fill_depth_msg(depth, np.full((2, 3), 1.25, np.float32), "16UC1")
    assert np.allclose(conv.depth_from_msg(depth), 1.25)
    info = msgs.CameraInfo()
    K = np.array([[50.0, 0, 3.5], [0, 52.0, 2.5], [0, 0, 1]])
    conv.fill_camera_info_msg(info, K, 7, 5)
    assert np.array_equal(conv.intrinsics_from_camera_info(info)[0], K)
    conv.fill_stamp(info.header.stamp, 5_000_000_001)
    assert conv.stamp_ns_from_msg(info.header.stamp) == 5_000_000_001
    T = np.eye(4)
    T[:3, 3] = (1.0, 2.0, 3.0)
    pose, tf = geometry.Pose(), geometry.Transform()
    conv.fill_pose_msg(pose, T)
    conv.fill_transform_msg(tf, T)
    assert np.allclose(conv.pose_from_msg(pose), T) and np.allclose(conv.transform_from_msg(tf), T)
    cloud = msgs.PointCloud2()
    conv.fill_point_cloud2_msg(
        cloud, np.zeros((3, 3), np.float32), np.zeros((3, 3), np.uint8), msgs.PointField
    )
    assert cloud.width == 3 and len(cloud.data) == 48


def test_integer_arrays_and_lists_as_data_are_range_checked() -> None:
    rgb = _rgb(2, 2)
    msg = _image(2, 2, "rgb8", b"", step=6)
    msg.data = rgb.reshape(-1).astype(np.int64)
    assert np.array_equal(conv.image_from_msg(msg), rgb)
    msg.data = [300] * 12
    with pytest.raises(ConversionError, match="bytes"):
        conv.image_from_msg(msg)
    msg.data = np.full(12, -1, np.int16)
    with pytest.raises(ConversionError, match="bytes"):
        conv.image_from_msg(msg)


def test_16uc1_writing_rounds_to_millimetres_and_marks_out_of_range_invalid() -> None:
    msg = NS()
    conv.fill_depth_msg(msg, np.array([[1.2344, 70.0, -1.0, np.inf]]), "16UC1")
    assert conv.depth_from_msg(msg).tolist() == [[np.float32(1.234), 0.0, 0.0, 0.0]]
    with pytest.raises(EncodingError):
        conv.fill_depth_msg(msg, np.zeros((2, 2)), "8UC1")


def test_stamps_out_of_the_time_message_range_are_refused() -> None:
    with pytest.raises(ConversionError):
        conv.fill_stamp(NS(), -1)
    with pytest.raises(ConversionError):
        conv.fill_stamp(NS(), 2**31 * 1_000_000_000)
    ros1 = NS(secs=0, nsecs=0)
    conv.fill_stamp(ros1, 3_000_000_004)
    assert (ros1.secs, ros1.nsecs) == (3, 4)


def test_non_rigid_matrices_are_not_written_as_poses() -> None:
    with pytest.raises(PoseError):
        conv.fill_pose_msg(_pose(), np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(PoseError):
        conv.fill_transform_msg(NS(translation=NS(), rotation=NS()), np.full((4, 4), np.nan))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 20), seed=st.integers(0, 2**16))
def test_point_cloud2_buffer_decodes_to_the_input_points(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    data, fields, step = conv.point_cloud2_fields(xyz, rgb)
    dtype = np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": ["<f4"] * 3 + ["<u4"],
            "offsets": [f[1] for f in fields],
            "itemsize": step,
        }
    )
    rec = np.frombuffer(data.tobytes(), dtype=dtype)
    assert np.array_equal(np.stack([rec["x"], rec["y"], rec["z"]], 1), xyz)
    assert np.array_equal((rec["rgb"] >> 16) & 255, rgb[:, 0])
    assert np.array_equal(rec["rgb"] & 255, rgb[:, 2])


_any_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5))


@settings(max_examples=200, deadline=None)
@given(
    k=st.lists(_any_float, min_size=0, max_size=12),
    d=st.lists(_any_float, max_size=8),
    w=st.integers(-2, 20000),
    h=st.integers(-2, 20000),
)
def test_fuzzed_camera_info_gives_a_sane_pinhole_or_a_conversion_error(k, d, w, h) -> None:
    try:
        K, width, height = conv.intrinsics_from_camera_info(NS(width=w, height=h, k=k, d=d))
    except ConversionError:
        return
    assert K.shape == (3, 3) and np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0
    assert 0 < width <= conv.MAX_IMAGE_SIDE_PX and 0 < height <= conv.MAX_IMAGE_SIDE_PX


@settings(max_examples=200, deadline=None)
@given(values=st.tuples(*[_any_float] * 7))
def test_fuzzed_poses_are_rigid_or_a_pose_error(values) -> None:
    try:
        T = conv.pose_from_msg(_pose(*values))
    except PoseError:
        return
    assert np.isfinite(T).all()
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)
    assert np.linalg.det(T[:3, :3]) > 0


def test_rgb8_images_are_read_without_a_copy_when_the_buffer_is_writable() -> None:
    """rclpy hands image data as a writable array.array: rgb8 is used in place (no copy at 30 Hz);
    read-only data (bytes) and reordered encodings are copied into a writable array."""
    import array

    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    data = array.array("B", rgb.tobytes())
    msg = NS(height=4, width=5, step=15, encoding="rgb8", data=data, is_bigendian=False)
    out = conv.image_from_msg(msg)
    assert np.array_equal(out, rgb) and np.shares_memory(out, np.frombuffer(data, np.uint8))
    for encoding, payload in (("rgb8", rgb.tobytes()), ("bgr8", data)):
        msg = NS(height=4, width=5, step=15, encoding=encoding, data=payload, is_bigendian=False)
        out = conv.image_from_msg(msg)
        assert out.flags.writeable and out.flags.c_contiguous
        assert np.array_equal(out, rgb if encoding == "rgb8" else rgb[:, :, ::-1])
