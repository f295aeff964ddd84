"""Tiny recorded sessions for the bag tests, written with rosbags (no ROS, no mirage_ros.sim).

A robot drives along a known analytic path: ``map -> odom`` is fixed, ``odom -> base_link``
moves at constant velocity and yaw rate (so linear/slerp interpolation between TF messages is
exact), ``base_link -> camera_optical`` is on ``/tf_static``. The ground truth camera pose of
every frame is returned next to the bag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import transforms3d

S = 1_000_000_000
RGB, DEPTH, INFO = "/camera/color/image_raw", "/camera/depth/image_raw", "/camera/color/camera_info"
CAMERA = "camera_optical"
#: camera optical axes (x right, y down, z forward) expressed in base_link (x forward, z up)
R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def T_xyz_yaw(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = transforms3d.euler.euler2mat(0.0, 0.0, yaw)
    T[:3, 3] = (x, y, z)
    return T


T_MAP_ODOM = T_xyz_yaw(1.0, 2.0, 0.0, 0.3)
T_BASE_CAMERA = np.eye(4)
T_BASE_CAMERA[:3, :3] = R_BASE_OPTICAL
T_BASE_CAMERA[:3, 3] = (0.2, 0.0, 0.5)


def T_odom_base(t_s: float) -> np.ndarray:
    return T_xyz_yaw(0.5 * t_s, 0.1 * t_s, 0.0, 0.2 * t_s)


@dataclass(frozen=True)
class BagSpec:
    """What to record (every knob a bad case needs)."""

    storage: str = "mcap"  # "mcap", "sqlite3" or "rosbag1"
    frames: int = 6
    width: int = 8
    height: int = 6
    fps: float = 10.0
    tf_hz: float = 50.0
    start_ns: int = 5 * S
    color_encoding: str = "rgb8"  # written as given (bgr8 flips channels; anything else raw)
    depth_encoding: str | None = "16UC1"  # None: no depth topic
    depth_offset_ns: int = 0  # depth header stamp - color header stamp
    depth_log_delay_ns: int = 0  # depth recorded this much later than its stamp
    info_size: tuple[int, int] | None = None  # (W, H) in camera_info; default the image size
    with_tf: bool = True  # False: no /tf at all (only /tf_static)


@dataclass(frozen=True)
class TruthFrame:
    stamp_ns: int
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_m: np.ndarray  # (H, W) float32, mm-exact
    K: np.ndarray  # (3, 3)
    T_world_camera: np.ndarray  # (4, 4) map <- camera_optical


class _Store:
    def __init__(self, ros1: bool) -> None:
        from mirage_ros.bag import typestore

        self.ros1 = ros1
        self.store = typestore(ros1)
        self.t = self.store.types

    def serialize(self, msg: Any) -> bytes:
        if self.ros1:
            return bytes(self.store.serialize_ros1(msg, msg.__msgtype__))
        return bytes(self.store.serialize_cdr(msg, msg.__msgtype__))

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        stamp = self.t["builtin_interfaces/msg/Time"](sec=stamp_ns // S, nanosec=stamp_ns % S)
        if self.ros1:
            return self.t["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame_id)
        return self.t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def tf(self, stamp_ns: int, parent: str, child: str, T: np.ndarray) -> Any:
        t = self.t
        w, x, y, z = transforms3d.quaternions.mat2quat(T[:3, :3])
        transform = t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](
                x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])
            ),
            rotation=t["geometry_msgs/msg/Quaternion"](
                x=float(x), y=float(y), z=float(z), w=float(w)
            ),
        )
        stamped = t["geometry_msgs/msg/TransformStamped"](
            header=self.header(stamp_ns, parent), child_frame_id=child, transform=transform
        )
        return t["tf2_msgs/msg/TFMessage"](transforms=[stamped])

    def image(self, stamp_ns: int, pixels: np.ndarray, encoding: str) -> Any:
        data = np.frombuffer(np.ascontiguousarray(pixels).tobytes(), np.uint8)
        h, w = pixels.shape[:2]
        return self.t["sensor_msgs/msg/Image"](
            header=self.header(stamp_ns, CAMERA),
            height=h,
            width=w,
            encoding=encoding,
            is_bigendian=0,
            step=data.size // h,
            data=data,
        )

    def camera_info(self, stamp_ns: int, K: np.ndarray, w: int, h: int) -> Any:
        t = self.t
        P = np.zeros((3, 4))
        P[:, :3] = K
        roi = t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        matrices = {"d": np.zeros(5), "k": K.reshape(-1), "r": np.eye(3).reshape(-1)}
        matrices["p"] = P.reshape(-1)
        if self.ros1:
            matrices = {k.upper(): v for k, v in matrices.items()}
        return t["sensor_msgs/msg/CameraInfo"](
            header=self.header(stamp_ns, CAMERA),
            height=h,
            width=w,
            distortion_model="plumb_bob",
            binning_x=0,
            binning_y=0,
            roi=roi,
            **matrices,
        )


def _writer(path: Path, storage: str) -> Any:
    if storage == "rosbag1":
        from rosbags.rosbag1 import Writer as Writer1

        return Writer1(path)
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    return Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin)


def write_test_bag(path: Path, spec: BagSpec = BagSpec()) -> list[TruthFrame]:
    """Record ``spec`` at ``path`` (a folder for rosbag2, a .bag file for ROS 1); the truth."""
    ros1 = spec.storage == "rosbag1"
    m = _Store(ros1)
    K = np.array([[10.0, 0.0, spec.width / 2 - 0.5], [0.0, 11.0, spec.height / 2 - 0.5], [0, 0, 1]])
    rng = np.random.default_rng(7)
    events: list[tuple[int, str, Any]] = []  # (log time, topic, message)
    truth: list[TruthFrame] = []
    for i in range(spec.frames):
        stamp = spec.start_ns + round(i * S / spec.fps) + 7_000_000  # between TF ticks
        rgb = rng.integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
        depth_mm = rng.integers(300, 5000, (spec.height, spec.width)).astype(np.uint16)
        depth_mm[0, 0] = 0  # one invalid pixel
        depth_m = depth_mm.astype(np.float32) / 1000.0
        t_s = (stamp - spec.start_ns) / S
        T = T_MAP_ODOM @ T_odom_base(t_s) @ T_BASE_CAMERA
        truth.append(TruthFrame(stamp, rgb, depth_m, K, T))
        pixels = rgb[:, :, ::-1] if spec.color_encoding == "bgr8" else rgb
        events.append((stamp, RGB, m.image(stamp, pixels, spec.color_encoding)))
        w, h = spec.info_size or (spec.width, spec.height)
        events.append((stamp, INFO, m.camera_info(stamp, K, w, h)))
        if spec.depth_encoding is not None:
            d_stamp = stamp + spec.depth_offset_ns
            if spec.depth_encoding == "16UC1":
                depth_img = depth_mm.astype("<u2")
            else:
                depth_img = np.where(depth_mm == 0, np.nan, depth_m).astype("<f4")
            log = d_stamp + spec.depth_log_delay_ns
            events.append((log, DEPTH, m.image(d_stamp, depth_img, spec.depth_encoding)))
    end_ns = truth[-1].stamp_ns if truth else spec.start_ns
    events.append(
        (spec.start_ns, "/tf_static", m.tf(spec.start_ns, "base_link", CAMERA, T_BASE_CAMERA))
    )
    if spec.with_tf:
        step = round(S / spec.tf_hz)
        for stamp in range(spec.start_ns - 2 * step, end_ns + 3 * step, step):
            t_s = (stamp - spec.start_ns) / S
            events.append((stamp, "/tf", m.tf(stamp, "map", "odom", T_MAP_ODOM)))
            events.append((stamp, "/tf", m.tf(stamp, "odom", "base_link", T_odom_base(t_s))))
    events.sort(key=lambda e: e[0])
    types = {
        RGB: "sensor_msgs/msg/Image",
        DEPTH: "sensor_msgs/msg/Image",
        INFO: "sensor_msgs/msg/CameraInfo",
        "/tf": "tf2_msgs/msg/TFMessage",
        "/tf_static": "tf2_msgs/msg/TFMessage",
    }
    with _writer(path, spec.storage) as writer:
        conns = {}
        for topic in sorted({e[1] for e in events}):
            kw: dict[str, Any] = {}
            if topic == "/tf_static" and ros1:
                kw["latching"] = 1
            conns[topic] = writer.add_connection(topic, types[topic], typestore=m.store, **kw)
        for log_ns, topic, msg in events:
            writer.write(conns[topic], log_ns, m.serialize(msg))
    return truth


def write_empty_bag(path: Path, storage: str = "mcap") -> None:
    """A valid bag with one connection and no messages."""
    m = _Store(storage == "rosbag1")
    with _writer(path, storage) as writer:
        writer.add_connection(RGB, "sensor_msgs/msg/Image", typestore=m.store)
