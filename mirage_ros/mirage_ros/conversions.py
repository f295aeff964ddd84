"""Conversions between ROS message fields and plain arrays (cv_bridge/sensor_msgs_py stand-in).

Pure functions named by direction, no logging, no I/O. They read and write message *fields*
only, so one function serves rclpy messages, rosbags messages and simple test objects.
Bad input raises :class:`ConversionError` / :class:`EncodingError` / :class:`PoseError` with a
message that names the numbers.
"""

from __future__ import annotations

import array
import math
from typing import Any

import numpy as np
import transforms3d

from mirage_ros.core.errors import ConversionError, EncodingError, PoseError

__all__ = [
    "COLOR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "MAX_IMAGE_SIDE_PX",
    "check_image_matches_info",
    "depth_from_msg",
    "fill_camera_info_msg",
    "fill_depth_msg",
    "fill_image_msg",
    "fill_point_cloud2_msg",
    "fill_pose_msg",
    "fill_stamp",
    "fill_transform_msg",
    "image_from_msg",
    "intrinsics_from_camera_info",
    "point_cloud2_fields",
    "pose_from_msg",
    "stamp_ns_from_msg",
    "transform_from_msg",
]

MAX_IMAGE_SIDE_PX = 16384
#: encoding -> (channels, channel order as indices into RGB(A), bytes per pixel)
COLOR_ENCODINGS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
DEPTH_ENCODINGS = ("16UC1", "32FC1")
_QUAT_TOLERANCE = 1e-3


def _as_bytes(data: Any) -> np.ndarray:
    """The bytes of a uint8[] field: bytes, bytearray, array.array('B'), list or numpy array."""
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8:
            return np.ascontiguousarray(data).reshape(-1)
        if data.dtype.kind in "iu" and (data.size == 0 or (data.min() >= 0 and data.max() < 256)):
            return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        raise ConversionError(f"image data must hold bytes (0..255), got a {data.dtype} array")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, array.array) and data.itemsize == 1:
        return np.frombuffer(data, dtype=np.uint8)
    try:
        return np.asarray(list(data), dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConversionError(f"image data must hold bytes (0..255): {exc}") from exc


def _like(old: Any, values: np.ndarray) -> Any:
    """``values`` in the container type the message field already holds.

    rclpy fields hold ``array.array`` (sequences) or numpy arrays (fixed-size arrays), rosbags
    fields hold numpy arrays (its serializer needs them), test namespaces hold anything: keep
    what is there so every message family stays serialisable; default to numpy.
    """
    if isinstance(old, array.array):
        return array.array(old.typecode, values.astype(old.typecode).tobytes())
    if isinstance(old, (bytes, bytearray)):
        return type(old)(values.tobytes())
    if isinstance(old, list):
        return values.tolist()
    return values.copy()


def _checked_buffer(msg: Any, bytes_per_px: int) -> np.ndarray:
    """(height, width * bytes_per_px) view of the image data, honouring ``step``."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if not (0 < height <= MAX_IMAGE_SIDE_PX and 0 < width <= MAX_IMAGE_SIDE_PX):
        raise ConversionError(f"image size {width}x{height} is not in 1..{MAX_IMAGE_SIDE_PX}")
    row = width * bytes_per_px
    if step < row:
        raise ConversionError(
            f"image step {step} is smaller than width*bytes_per_pixel = {width}*{bytes_per_px}"
        )
    data = _as_bytes(msg.data)
    if data.size < step * height:
        raise ConversionError(
            f"image data is truncated: {data.size} bytes, step*height = {step}*{height} "
            f"= {step * height}"
        )
    return data[: step * height].reshape(height, step)[:, :row]


def image_from_msg(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB."""
    encoding = str(msg.encoding).lower()
    if encoding not in COLOR_ENCODINGS:
        raise EncodingError(
            f"unsupported color encoding {msg.encoding!r}; supported: {', '.join(COLOR_ENCODINGS)}"
        )
    channels, order = COLOR_ENCODINGS[encoding]
    buf = _checked_buffer(msg, channels)
    pixels = buf.reshape(int(msg.height), int(msg.width), channels)
    if order == tuple(range(channels)) and pixels.flags.writeable:
        return np.ascontiguousarray(pixels)  # rgb8: the message's own bytes (no copy)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def depth_from_msg(msg: Any) -> np.ndarray:
    """sensor_msgs/Image depth (16UC1 mm or 32FC1 m) -> (H, W) float32 metres, 0 = invalid."""
    encoding = str(msg.encoding).upper()
    if encoding not in DEPTH_ENCODINGS:
        raise EncodingError(
            f"unsupported depth encoding {msg.encoding!r}; supported: {', '.join(DEPTH_ENCODINGS)}"
        )
    size = 2 if encoding == "16UC1" else 4
    buf = _checked_buffer(msg, size)
    big = bool(getattr(msg, "is_bigendian", False))
    dtype = np.dtype(">u2" if big else "<u2") if size == 2 else np.dtype(">f4" if big else "<f4")
    raw = np.ascontiguousarray(buf).view(dtype).reshape(int(msg.height), int(msg.width))
    if size == 2:
        return raw.astype(np.float32) / 1000.0
    depth = raw.astype(np.float32)
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return depth


def intrinsics_from_camera_info(
    msg: Any, allow_distortion: bool = False
) -> tuple[np.ndarray, int, int]:
    """sensor_msgs/CameraInfo -> (K (3, 3) float64, width, height).

    The memory needs rectified images: non-zero distortion coefficients are refused unless
    ``allow_distortion`` (then they are ignored).
    """
    width, height = int(msg.width), int(msg.height)
    if not (0 < width <= MAX_IMAGE_SIDE_PX and 0 < height <= MAX_IMAGE_SIDE_PX):
        raise ConversionError(f"camera_info size {width}x{height} is not in 1..{MAX_IMAGE_SIDE_PX}")
    k = getattr(msg, "k", None)
    if k is None:
        k = getattr(msg, "K", None)
    try:
        K = np.asarray(k, dtype=np.float64).reshape(3, 3)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"camera_info k must hold 9 numbers: {exc}") from exc
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not np.isfinite(K).all():
        raise ConversionError("camera_info k holds NaN or inf")
    if fx <= 0 or fy <= 0:
        raise ConversionError(f"camera_info focal lengths must be > 0, got fx={fx}, fy={fy}")
    if not (-width <= cx <= 2 * width and -height <= cy <= 2 * height):
        raise ConversionError(
            f"camera_info principal point ({cx}, {cy}) is implausible for {width}x{height}"
        )
    if K[0, 1] != 0 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise ConversionError(f"camera_info k is not a pinhole matrix: {K.tolist()}")
    d = getattr(msg, "d", None)
    if d is None:
        d = getattr(msg, "D", None)
    coeffs = np.asarray(list(d) if d is not None else [], dtype=np.float64)
    if coeffs.size and not allow_distortion and np.any(coeffs != 0):
        raise ConversionError(
            "camera_info has non-zero distortion; mirage needs rectified images "
            "(subscribe to image_rect or rectify first)"
        )
    return K, width, height


def check_image_matches_info(image_hw: tuple[int, int], info_wh: tuple[int, int]) -> None:
    """Raise if an image's (H, W) does not match a camera_info's (W, H)."""
    if (image_hw[1], image_hw[0]) != tuple(info_wh):
        raise ConversionError(
            f"image is {image_hw[1]}x{image_hw[0]} but camera_info says {info_wh[0]}x{info_wh[1]}"
        )


def stamp_ns_from_msg(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) or ROS 1 time (secs, nsecs) -> int ns."""
    if hasattr(stamp, "sec"):
        sec, nsec = int(stamp.sec), int(stamp.nanosec)
    else:
        sec, nsec = int(stamp.secs), int(stamp.nsecs)
    if not 0 <= nsec < 1_000_000_000:
        raise ConversionError(f"stamp nanoseconds {nsec} are out of range")
    return sec * 1_000_000_000 + nsec


def fill_stamp(stamp: Any, stamp_ns: int) -> None:
    """int ns -> builtin_interfaces/Time (sec, nanosec; ROS 1 style secs, nsecs if it has them).

    builtin_interfaces/Time.sec is an int32: negative stamps and stamps past 2038 are refused.
    """
    stamp_ns = int(stamp_ns)
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    if not 0 <= sec < 2**31:
        raise ConversionError(f"stamp {stamp_ns} ns does not fit builtin_interfaces/Time")
    if hasattr(stamp, "secs") and not hasattr(stamp, "sec"):
        stamp.secs, stamp.nsecs = int(sec), int(nsec)
    else:
        stamp.sec, stamp.nanosec = int(sec), int(nsec)


def _rigid(translation: tuple[float, float, float], q_xyzw: tuple[float, ...]) -> np.ndarray:
    return _rigid_and_quat(translation, q_xyzw)[0]


def _rigid_and_quat(
    translation: tuple[float, float, float], q_xyzw: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The (4, 4) transform and its unit quaternion (w, x, y, z), w >= 0."""
    values = (*translation, *q_xyzw)
    if not all(math.isfinite(v) for v in values):
        raise PoseError(f"pose holds NaN or inf (must be finite): {values}")
    norm = math.sqrt(sum(v * v for v in q_xyzw))
    if norm == 0.0:
        raise PoseError("zero quaternion: orientation must be a unit quaternion")
    if abs(norm - 1.0) > _QUAT_TOLERANCE:
        raise PoseError(f"quaternion is not normalised: |q| = {norm:.6f}")
    q_wxyz = np.array([q_xyzw[3], *q_xyzw[:3]], dtype=np.float64) / norm
    if q_wxyz[0] < 0:
        q_wxyz = -q_wxyz  # q and -q are one rotation; w >= 0 as transforms3d's mat2quat gives
    T = np.eye(4)
    T[:3, :3] = transforms3d.quaternions.quat2mat(q_wxyz)
    T[:3, 3] = translation
    return T, q_wxyz


def pose_from_msg(pose: Any) -> np.ndarray:
    """geometry_msgs/Pose -> (4, 4) float64 rigid transform."""
    p, q = pose.position, pose.orientation
    return _rigid(
        (float(p.x), float(p.y), float(p.z)), (float(q.x), float(q.y), float(q.z), float(q.w))
    )


def transform_from_msg(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform -> (4, 4) float64 rigid transform."""
    return transform_and_quat_from_msg(transform)[0]


def transform_and_quat_from_msg(transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """geometry_msgs/Transform -> (4, 4) float64 rigid transform and its unit quaternion
    (w, x, y, z), w >= 0 (what a transform buffer stores)."""
    t, q = transform.translation, transform.rotation
    return _rigid_and_quat(
        (float(t.x), float(t.y), float(t.z)), (float(q.x), float(q.y), float(q.z), float(q.w))
    )


def _checked_rigid(T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise PoseError(f"a pose must be a finite (4, 4) matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
        raise PoseError("pose rotation is not orthonormal with det +1")
    return T


def _quat_xyzw(T: np.ndarray) -> tuple[float, float, float, float]:
    w, x, y, z = transforms3d.quaternions.mat2quat(T[:3, :3])
    if w < 0:  # canonical sign
        w, x, y, z = -w, -x, -y, -z
    return float(x), float(y), float(z), float(w)


def fill_pose_msg(pose: Any, T: np.ndarray) -> None:
    """(4, 4) rigid transform -> geometry_msgs/Pose fields (position, orientation x y z w)."""
    T = _checked_rigid(T)
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    q = pose.orientation
    q.x, q.y, q.z, q.w = _quat_xyzw(T)


def fill_transform_msg(transform: Any, T: np.ndarray) -> None:
    """(4, 4) rigid transform -> geometry_msgs/Transform fields (translation, rotation)."""
    T = _checked_rigid(T)
    t = transform.translation
    t.x, t.y, t.z = (float(v) for v in T[:3, 3])
    q = transform.rotation
    q.x, q.y, q.z, q.w = _quat_xyzw(T)


def fill_image_msg(msg: Any, rgb: np.ndarray, encoding: str = "rgb8") -> None:
    """(H, W, 3) uint8 RGB -> Image fields (height, width, encoding, step, data) as rgb8/bgr8."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConversionError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if encoding not in ("rgb8", "bgr8"):
        raise EncodingError(f"fill_image_msg writes rgb8 or bgr8, not {encoding!r}")
    data = rgb if encoding == "rgb8" else rgb[:, :, ::-1]
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, int(rgb.shape[1]) * 3
    msg.data = _like(getattr(msg, "data", None), np.ascontiguousarray(data).reshape(-1))


def fill_depth_msg(msg: Any, image: np.ndarray, encoding: str = "32FC1") -> None:
    """(H, W) float image -> Image fields.

    32FC1: the values as they are (metres with NaN where unknown, or any float channel such as
    confidence). 16UC1: metres rounded to millimetres; NaN, inf, <= 0 and > 65.535 m become 0
    (the 16UC1 "invalid").
    """
    if image.ndim != 2:
        raise ConversionError(f"a depth image must be (H, W), got {image.shape}")
    if encoding == "32FC1":
        data = np.ascontiguousarray(image, dtype="<f4")
    elif encoding == "16UC1":
        m = np.asarray(image, dtype=np.float64)
        ok = np.isfinite(m) & (m > 0) & (m <= 65.535)
        data = np.where(ok, np.round(np.where(ok, m, 0.0) * 1000.0), 0).astype("<u2")
    else:
        raise EncodingError(f"fill_depth_msg writes 32FC1 or 16UC1, not {encoding!r}")
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding, msg.is_bigendian = encoding, 0
    msg.step = int(image.shape[1]) * data.itemsize
    msg.data = _like(getattr(msg, "data", None), data.reshape(-1).view(np.uint8))


def fill_camera_info_msg(msg: Any, K: np.ndarray, width: int, height: int) -> None:
    """Pinhole CameraInfo fields (rectified: zero plumb_bob distortion, R = I, P = [K | 0])."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError(f"K must be a finite (3, 3) matrix with fx, fy > 0, got {K}")
    if not (0 < int(width) <= MAX_IMAGE_SIDE_PX and 0 < int(height) <= MAX_IMAGE_SIDE_PX):
        raise ConversionError(f"camera_info size {width}x{height} is not in 1..{MAX_IMAGE_SIDE_PX}")
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = _like(getattr(msg, "d", None), np.zeros(5))
    msg.k = _like(getattr(msg, "k", None), K.reshape(-1))
    msg.r = _like(getattr(msg, "r", None), np.eye(3).reshape(-1))
    P = np.zeros((3, 4))
    P[:3, :3] = K
    msg.p = _like(getattr(msg, "p", None), P.reshape(-1))


#: PointField.FLOAT32
_FLOAT32 = 7


def point_cloud2_fields(
    xyz: np.ndarray, rgb: np.ndarray
) -> tuple[np.ndarray, list[tuple[str, int, int, int]], int]:
    """The data buffer and field layout of an XYZRGB PointCloud2 (sensor_msgs_py stand-in).

    Args:
        xyz: (N, 3) positions (cast to float32).
        rgb: (N, 3) uint8 colours, packed into a uint32 as 0x00RRGGBB and declared FLOAT32
            (the RViz/PCL convention).

    Returns:
        (data (N * 16,) uint8, [(name, offset, datatype, count)] for x, y, z, rgb, point_step).
    """
    xyz = np.asarray(xyz)
    n = int(xyz.shape[0]) if xyz.ndim == 2 else -1
    if n < 0 or xyz.shape != (n, 3) or np.shape(rgb) != (n, 3):
        raise ConversionError(
            f"xyz and rgb must be (N, 3), got {np.shape(xyz)} and {np.shape(rgb)}"
        )
    if rgb.dtype != np.uint8:
        raise ConversionError(f"rgb must be uint8, got {rgb.dtype}")
    packed = (
        (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    ).astype(np.uint32)
    rec = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    rec["x"], rec["y"], rec["z"], rec["rgb"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], packed
    fields = [(name, off, _FLOAT32, 1) for name, off in (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))]
    return rec.view(np.uint8).reshape(-1), fields, 16


def fill_point_cloud2_msg(msg: Any, xyz: np.ndarray, rgb: np.ndarray, point_field_cls: Any) -> None:
    """XYZRGB PointCloud2 fields (height 1, dense) from (N, 3) positions and (N, 3) uint8 colours.

    ``point_field_cls`` is the PointField class of the same message family (rclpy's
    ``sensor_msgs.msg.PointField`` or a rosbags typestore's). See :func:`point_cloud2_fields`.
    """
    data, fields, point_step = point_cloud2_fields(xyz, rgb)
    n = data.size // point_step
    msg.height, msg.width = 1, n
    msg.fields = [
        point_field_cls(name=name, offset=off, datatype=dt, count=count)
        for name, off, dt, count in fields
    ]
    msg.is_bigendian, msg.point_step, msg.row_step, msg.is_dense = (
        False,
        point_step,
        point_step * n,
        True,
    )
    msg.data = _like(getattr(msg, "data", None), data)
