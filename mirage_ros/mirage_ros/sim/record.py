"""Write a SyntheticSequence as a robot-like bag, and the ``mirage record-synthetic`` command.

Topics (frame ids in :data:`mirage_ros.sim.FRAME_IDS`):

==============================  ============================  ===============================
topic                           type                          notes
==============================  ============================  ===============================
/tf                             tf2_msgs/msg/TFMessage        map->odom, odom->base_link at
                                                              ``tf_rate_hz``, from >= 0.1 s before
                                                              the first image to 0.1 s after
/tf_static                      tf2_msgs/msg/TFMessage        base_link->camera optical frame,
                                                              once, transient-local (latched)
/camera/color/image_raw         sensor_msgs/msg/Image         rgb8
/camera/color/camera_info       sensor_msgs/msg/CameraInfo    plumb_bob, zero distortion
/camera/depth/image_raw         sensor_msgs/msg/Image         16UC1 (mm, 0 = invalid) or 32FC1
                                                              (m); registered to the colour
                                                              camera, stamp + depth_offset_ns
/camera/depth/camera_info       sensor_msgs/msg/CameraInfo    same intrinsics, depth stamp
==============================  ============================  ===============================

Bags are written with rosbags (no ROS installation needed): rosbag2 with the mcap or sqlite3
storage, or a ROS 1 bag (``storage="rosbag1"``, ``/tf_static`` latched).
"""

from __future__ import annotations

import argparse
import heapq
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from transforms3d.quaternions import mat2quat

from mirage_ros.core.errors import ConfigError
from mirage_ros.sim.config import SceneConfig
from mirage_ros.sim.sequence import FRAME_IDS, Frame, SyntheticSequence

__all__ = ["DEPTH_ENCODINGS", "STORAGES", "TOPICS", "add_arguments", "run", "write_bag"]

STORAGES = ("mcap", "sqlite3", "rosbag1")
DEPTH_ENCODINGS = ("16UC1", "32FC1")
TOPICS = {
    "tf": "/tf",
    "tf_static": "/tf_static",
    "rgb": "/camera/color/image_raw",
    "rgb_info": "/camera/color/camera_info",
    "depth": "/camera/depth/image_raw",
    "depth_info": "/camera/depth/camera_info",
}
TYPES = {
    "tf": "tf2_msgs/msg/TFMessage",
    "tf_static": "tf2_msgs/msg/TFMessage",
    "rgb": "sensor_msgs/msg/Image",
    "rgb_info": "sensor_msgs/msg/CameraInfo",
    "depth": "sensor_msgs/msg/Image",
    "depth_info": "sensor_msgs/msg/CameraInfo",
}
_TF_MARGIN_NS = 100_000_000


class _Msgs:
    """Builds messages of one typestore (ROS 2 or ROS 1 field names)."""

    def __init__(self, ros1: bool) -> None:
        from mirage_ros.bag import typestore

        self.ros1 = ros1
        self.store = typestore(ros1)
        self.t = self.store.types
        self.seq = 0

    def serialize(self, msg: object, msgtype: str) -> bytes:
        if self.ros1:
            return bytes(self.store.serialize_ros1(msg, msgtype))
        return bytes(self.store.serialize_cdr(msg, msgtype))

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        stamp = self.t["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        )
        if self.ros1:
            self.seq += 1
            return self.t["std_msgs/msg/Header"](seq=self.seq, stamp=stamp, frame_id=frame_id)
        return self.t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def transform(self, stamp_ns: int, parent: str, child: str, T: np.ndarray) -> Any:
        q = mat2quat(T[:3, :3])
        q = -q if q[0] < 0 else q  # one sign for the same rotation (w >= 0)
        t = self.t
        tr = t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](
                x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])
            ),
            rotation=t["geometry_msgs/msg/Quaternion"](
                x=float(q[1]), y=float(q[2]), z=float(q[3]), w=float(q[0])
            ),
        )
        return t["geometry_msgs/msg/TransformStamped"](
            header=self.header(stamp_ns, parent), child_frame_id=child, transform=tr
        )

    def tf(self, transforms: list[Any]) -> Any:
        return self.t["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def image(self, stamp_ns: int, frame_id: str, array: np.ndarray, encoding: str) -> Any:
        h, w = array.shape[:2]
        data = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8)
        return self.t["sensor_msgs/msg/Image"](
            header=self.header(stamp_ns, frame_id),
            height=h,
            width=w,
            encoding=encoding,
            is_bigendian=0,
            step=data.size // h,
            data=data,
        )

    def camera_info(self, stamp_ns: int, frame_id: str, K: np.ndarray, w: int, h: int) -> Any:
        P = np.zeros((3, 4))
        P[:, :3] = K
        fields = {
            "header": self.header(stamp_ns, frame_id),
            "height": h,
            "width": w,
            "distortion_model": "plumb_bob",
            "binning_x": 0,
            "binning_y": 0,
            "roi": self.t["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            ),
        }
        arrays = {
            "d": np.zeros(5),
            "k": K.reshape(-1).astype(np.float64),
            "r": np.eye(3).reshape(-1),
            "p": P.reshape(-1),
        }
        for name, value in arrays.items():
            fields[name.upper() if self.ros1 else name] = value
        return self.t["sensor_msgs/msg/CameraInfo"](**fields)


def depth_image(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """depth_m (H, W) float32 metres -> 16UC1 millimetres (0 = invalid) or 32FC1 metres."""
    if encoding == "32FC1":
        return np.asarray(depth_m, dtype="<f4")
    mm = np.round(np.asarray(depth_m, dtype=np.float64) * 1000.0)
    mm[(mm <= 0) | (mm > 65535) | ~np.isfinite(mm)] = 0
    return mm.astype("<u2")


def _qos(latched: bool) -> list[Any]:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    infinite = QosTime(9223372036, 854775807)
    return [
        Qos(
            history=QosHistory.KEEP_LAST,
            depth=1 if latched else 10,
            reliability=QosReliability.RELIABLE,
            durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
            deadline=infinite,
            lifespan=infinite,
            liveliness=QosLiveliness.AUTOMATIC,
            liveliness_lease_duration=infinite,
            avoid_ros_namespace_conventions=False,
        )
    ]


def _events(
    sequence: SyntheticSequence, depth_offset_ns: int
) -> Iterator[tuple[int, int, str, int]]:
    """(stamp_ns, order, kind, index) of every message, in stamp order."""
    cfg = sequence.config
    # TF starts a whole number of TF periods before the first image (so image stamps fall on
    # TF stamps when the rates divide) and covers every image, depth included
    period_ns = 1e9 / cfg.tf_rate_hz
    lead_ns = _TF_MARGIN_NS + max(0, -depth_offset_ns)
    start = sequence.start_ns - round(math.ceil(lead_ns / period_ns) * period_ns)
    end = max(sequence.end_ns, sequence.end_ns + depth_offset_ns) + _TF_MARGIN_NS
    n_tf = int((end - start) * cfg.tf_rate_hz // 1_000_000_000) + 1
    tf = ((start + round(k * 1e9 / cfg.tf_rate_hz), 1, "tf", k) for k in range(n_tf))
    rgb = ((s, 2, "rgb", i) for i, s in enumerate(sequence.stamps_ns))
    depth = ((s + depth_offset_ns, 3, "depth", i) for i, s in enumerate(sequence.stamps_ns))
    yield (start, 0, "tf_static", 0)
    yield from heapq.merge(tf, rgb, depth)


def write_bag(
    sequence: SyntheticSequence,
    path: str | Path,
    storage: str = "mcap",
    depth_encoding: str = "16UC1",
    *,
    depth_offset_ns: int = 0,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Render every frame of `sequence` and write it, with TF, as a bag at `path`.

    storage: "mcap" | "sqlite3" (rosbag2 folder at `path`) or "rosbag1" (a .bag file);
    depth_encoding: "16UC1" (mm) or "32FC1" (m); depth_offset_ns shifts the depth stamps
    (a real driver's colour/depth offset, for tests of approximate matching). `progress` is
    called with the index of each frame written. Refuses to overwrite an existing path.
    """
    if storage not in STORAGES:
        raise ConfigError(f"storage must be one of {STORAGES}, got {storage!r}")
    if depth_encoding not in DEPTH_ENCODINGS:
        raise ConfigError(
            f"depth_encoding must be one of {DEPTH_ENCODINGS}, got {depth_encoding!r}"
        )
    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path} exists already; refusing to overwrite it")
    ros1 = storage == "rosbag1"
    msgs = _Msgs(ros1)
    if ros1:
        from rosbags.rosbag1 import Writer as Writer1

        writer: Any = Writer1(path)
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
    cfg = sequence.config
    ids = FRAME_IDS
    with writer:
        conns = {}
        for key, topic in TOPICS.items():
            latched = key == "tf_static"
            if ros1:
                conns[key] = writer.add_connection(
                    topic, TYPES[key], typestore=msgs.store, latching=1 if latched else None
                )
            else:
                conns[key] = writer.add_connection(
                    topic, TYPES[key], typestore=msgs.store, offered_qos_profiles=_qos(latched)
                )

        def put(key: str, stamp_ns: int, msg: object) -> None:
            writer.write(conns[key], stamp_ns, msgs.serialize(msg, TYPES[key]))

        frames: dict[int, Frame] = {}  # rendered, waiting for their other image
        for stamp, _, kind, index in _events(sequence, depth_offset_ns):
            if kind == "tf_static":
                T = sequence.T_base_camera
                put(
                    "tf_static",
                    stamp,
                    msgs.tf([msgs.transform(stamp, ids["base"], ids["camera"], T)]),
                )
            elif kind == "tf":
                T_map_odom, T_odom_base = sequence.poses_at(stamp)
                put(
                    "tf",
                    stamp,
                    msgs.tf(
                        [
                            msgs.transform(stamp, ids["map"], ids["odom"], T_map_odom),
                            msgs.transform(stamp, ids["odom"], ids["base"], T_odom_base),
                        ]
                    ),
                )
            else:
                frame = frames.pop(index, None)
                if frame is None:
                    frame = frames[index] = sequence[index]
                cam = ids["camera"]
                info = msgs.camera_info(stamp, cam, frame.K, cfg.width, cfg.height)
                if kind == "rgb":
                    put("rgb", stamp, msgs.image(stamp, cam, frame.rgb, "rgb8"))
                    put("rgb_info", stamp, info)
                else:
                    img = depth_image(frame.depth_m, depth_encoding)
                    put("depth", stamp, msgs.image(stamp, cam, img, depth_encoding))
                    put("depth_info", stamp, info)
                    if progress is not None:
                        progress(index)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirage record-synthetic``."""
    d = SceneConfig()
    parser.add_argument(
        "output", type=Path, help="bag to create (folder for rosbag2, file for rosbag1)"
    )
    parser.add_argument(
        "--scene",
        "--seed",
        dest="seed",
        type=int,
        default=d.seed,
        help="scene seed: world and trajectory (evaluation seeds < 1000)",
    )
    parser.add_argument("--kind", choices=("apartment", "room"), default=d.kind)
    parser.add_argument(
        "--texture-set",
        choices=("train", "test", "all"),
        default=d.texture_set,
        help="disjoint texture groups for training and evaluation",
    )
    parser.add_argument("--frames", type=int, default=d.frames, help="number of camera frames")
    parser.add_argument("--width", type=int, default=d.width, help="image width, px")
    parser.add_argument("--height", type=int, default=d.height, help="image height, px")
    parser.add_argument(
        "--resolution", default=None, help="WxH, e.g. 320x240 (overrides --width/--height)"
    )
    parser.add_argument("--fov-deg", type=float, default=d.fov_deg, help="horizontal field of view")
    parser.add_argument("--camera-rate-hz", type=float, default=d.camera_rate_hz)
    parser.add_argument("--tf-rate-hz", type=float, default=d.tf_rate_hz)
    parser.add_argument("--speed-mps", type=float, default=d.speed_mps, help="walking speed")
    parser.add_argument(
        "--event",
        choices=("none", "move", "remove"),
        default=d.event,
        help="move or remove an object mid-sequence",
    )
    parser.add_argument("--event-frame", type=int, default=None, help="default: frames // 2")
    parser.add_argument("--storage", choices=STORAGES, default="mcap")
    parser.add_argument("--depth-encoding", choices=DEPTH_ENCODINGS, default="16UC1")
    parser.add_argument(
        "--depth-offset-ns",
        type=int,
        default=0,
        help="shift of the depth stamps against the colour stamps",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Build the sequence, write the bag, print one summary line."""
    if Path(args.output).exists():
        raise ConfigError(f"{args.output} exists already; refusing to overwrite it")
    if args.resolution:
        try:
            args.width, args.height = (int(v) for v in args.resolution.lower().split("x"))
        except ValueError as exc:
            raise ConfigError(
                f"--resolution must look like 320x240, not {args.resolution!r}"
            ) from exc
    config = SceneConfig(
        seed=args.seed,
        kind=args.kind,
        texture_set=args.texture_set,
        width=args.width,
        height=args.height,
        fov_deg=args.fov_deg,
        frames=args.frames,
        camera_rate_hz=args.camera_rate_hz,
        tf_rate_hz=args.tf_rate_hz,
        speed_mps=args.speed_mps,
        event=args.event,
        event_frame=args.event_frame,
    )
    t0 = time.perf_counter()
    sequence = SyntheticSequence(config)
    bar: Any = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=config.frames, unit="frame", desc="record-synthetic")
    write_bag(
        sequence,
        args.output,
        storage=args.storage,
        depth_encoding=args.depth_encoding,
        depth_offset_ns=args.depth_offset_ns,
        progress=None if bar is None else (lambda _i: bar.update(1)),
    )
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    print(
        f"wrote {args.output} ({args.storage}, {config.frames} frames {config.width}x"
        f"{config.height}, {config.frames / config.camera_rate_hz:.1f} s, seed {config.seed}, "
        f"event {config.event}) in {elapsed:.1f} s"
    )
    return 0
