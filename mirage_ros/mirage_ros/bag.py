"""Reading recorded sessions: rosbag2 (sqlite3, mcap; a folder or one .mcap file) and ROS 1 bags.

Uses the pure-Python ``rosbags`` library (no ROS install). :func:`read_frames` yields paired
RGB-D frames with the camera pose from the same :class:`TransformBuffer` the node uses, so
offline evaluation and the live node see identical poses. Every problem with the input raises
a :class:`MirageError` subclass with a one-line message (missing/misnamed topics list the
topics that exist; a missing TF path names the frames that exist; rosbags' own exceptions for
unreadable files become :class:`BagError`).

How frames are read: a first pass loads all of ``/tf`` and ``/tf_static`` into a buffer that
keeps everything (so a pose can be interpolated between the TF messages around its stamp); a
second pass streams the image and camera_info topics, holding color frames back for a short
re-ordering window so that their depth and camera_info (matched by header stamp, not by
recording time) can arrive, and yields them in stamp order.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from mirage_ros import conversions as conv
from mirage_ros.core.errors import BagError, ConversionError, TransformError
from mirage_ros.transforms import TransformBuffer

__all__ = [
    "BagFrame",
    "BagReader",
    "FrameStats",
    "bag_summary",
    "find_topic",
    "open_bag",
    "open_reader",
    "read_frames",
    "typestore",
]

_TF_TOPICS = ("/tf", "/tf_static")
_MAX_INFOS = 1024  # camera_info messages kept for pairing (they are small)

PathsLike = Path | str | Sequence[Path | str]


@dataclass(frozen=True, eq=False)
class BagFrame:
    """One paired RGB-D frame and its camera pose in the fixed frame."""

    stamp_ns: int  # header stamp of the color image
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_m: np.ndarray | None  # (H, W) float32 metres, 0 = invalid; None without a depth topic
    K: np.ndarray  # (3, 3) float64 intrinsics of the color image
    T_world_camera: np.ndarray  # (4, 4) float64: camera (optical frame) points -> fixed frame
    frame_id: str  # the color image's header.frame_id


@dataclass
class FrameStats:
    """What :func:`read_frames` read and skipped (filled while iterating)."""

    color: int = 0  # color images read
    yielded: int = 0
    skipped_no_transform: int = 0
    skipped_no_depth: int = 0
    skipped_no_camera_info: int = 0
    skipped_out_of_order: int = 0  # later than the re-ordering window, or a repeated stamp
    frames_seen: set[str] = field(default_factory=set)  # camera frame ids of the color images


def typestore(ros1: bool) -> Any:
    """The rosbags typestore for writing ROS 2 (Kilted) or ROS 1 (Noetic) bags, with
    ``tf2_msgs/msg/TFMessage`` registered where rosbags' Noetic store lacks it (this one-field
    definition has the real md5, 94810edd...)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_KILTED)
    if ros1 and "tf2_msgs/msg/TFMessage" not in store.fielddefs:
        store.register(
            get_types_from_msg(
                "geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"
            )
        )
    return store


def _norm(topic: str) -> str:
    return "/" + topic.lstrip("/")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _as_paths(paths: PathsLike) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


class BagReader:
    """An open bag (or several read as one); use :func:`open_bag` as a context manager.

    Every rosbags exception (unreadable, truncated, corrupt input) surfaces as BagError.
    """

    def __init__(self, paths: PathsLike) -> None:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.paths = _as_paths(paths)
        if not self.paths:
            raise BagError("no bag given")
        for p in self.paths:
            if not p.exists():
                raise BagError(f"bag {p} does not exist")
        self._names = ", ".join(map(str, self.paths))
        try:
            self._reader = AnyReader(
                self.paths, default_typestore=get_typestore(Stores.ROS2_KILTED)
            )
            self._reader.open()
        except Exception as exc:  # rosbags raises many types for unreadable input
            raise BagError(f"cannot read {self._names}: {_one_line(exc)}") from exc
        if not self._reader.connections or self._reader.message_count == 0:
            self._reader.close()
            raise BagError(f"{self._names} holds no messages")

    # ------------------------------------------------------------------ context
    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    # ------------------------------------------------------------------ contents
    @property
    def reader(self) -> Any:
        """The underlying ``rosbags.highlevel.AnyReader``."""
        return self._reader

    @property
    def connections(self) -> list[Any]:
        return list(self._reader.connections)

    def topics(self) -> dict[str, dict[str, Any]]:
        """{"/topic": {"type": msgtype, "count": messages}}, topic names with a leading slash."""
        topics: dict[str, dict[str, Any]] = {}
        for c in self._reader.connections:
            t = topics.setdefault(_norm(c.topic), {"type": c.msgtype, "count": 0})
            t["count"] += c.msgcount
        return topics

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    def find_topic(self, topic: str, what: str) -> list[Any]:
        """Connections of ``topic`` (leading slash optional), or BagError listing the topics."""
        conns = [c for c in self._reader.connections if _norm(c.topic) == _norm(topic)]
        if not conns:
            existing = sorted(f"{t} ({v['type']})" for t, v in self.topics().items())
            raise BagError(f"{what} topic {topic!r} not found; the bag has: {', '.join(existing)}")
        return conns

    def messages(self, connections: list[Any]) -> Iterator[tuple[str, int, Any]]:
        """(topic with leading slash, log time ns, deserialised message) in log-time order."""
        it = iter(self._reader.messages(connections=connections))
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as exc:
                raise BagError(f"{self._names} is truncated or corrupt: {_one_line(exc)}") from exc
            conn, t, raw = item
            try:
                msg = self._reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(
                    f"{self._names}: a {conn.msgtype} message on {conn.topic} cannot be "
                    f"decoded (truncated or corrupt): {_one_line(exc)}"
                ) from exc
            yield _norm(conn.topic), int(t), msg


def open_bag(paths: PathsLike) -> BagReader:
    """Open one or more bags (rosbag2 folder or .mcap/.db3 file, ROS 1 .bag): a context manager."""
    return BagReader(paths)


def open_reader(paths: PathsLike) -> Any:
    """An opened ``rosbags.highlevel.AnyReader`` (close it), or BagError in one line."""
    return BagReader(paths).reader


def find_topic(bag: BagReader, topic: str, what: str) -> list[Any]:
    """Connections of ``topic`` in ``bag``, or BagError listing the topics that exist."""
    return bag.find_topic(topic, what)


def bag_summary(paths: PathsLike) -> dict[str, Any]:
    """Topics with types and counts, start/end stamps, duration and message count."""
    with open_bag(paths) as bag:
        return {
            "paths": [str(p) for p in bag.paths],
            "topics": bag.topics(),
            "messages": bag.message_count,
            "start_ns": bag.start_ns,
            "end_ns": bag.end_ns,
            "duration_s": (bag.end_ns - bag.start_ns) / 1e9,
        }


def load_transforms(bag: BagReader) -> TransformBuffer:
    """Every /tf and /tf_static message of the bag in a buffer that forgets nothing."""
    buf = TransformBuffer(cache_time_s=float("inf"))
    conns = [c for c in bag.connections if _norm(c.topic) in _TF_TOPICS]
    for topic, _t, msg in bag.messages(conns):
        buf.add_tf_message(msg, static=topic == "/tf_static")
    return buf


def read_frames(
    paths: PathsLike,
    rgb_topic: str,
    depth_topic: str | None,
    info_topic: str,
    fixed_frame: str = "map",
    max_frames: int | None = None,
    depth_slop_ns: int = 20_000_000,
    stats: FrameStats | None = None,
    reorder_window_ns: int = 500_000_000,
) -> Iterator[BagFrame]:
    """Paired frames in stamp order.

    Color images are paired with the camera_info of the same stamp (else the latest before it,
    else the first after it within ``depth_slop_ns``) and with the depth image nearest in stamp
    within ``depth_slop_ns``. Frames without a transform, camera info or depth are skipped and
    counted in ``stats``; if no frame at all has a transform, raises TransformError naming the
    frames that exist. Image/camera_info or color/depth size mismatches raise ConversionError,
    unsupported encodings EncodingError, unreadable bags and missing topics BagError.
    """
    if depth_slop_ns < 0 or reorder_window_ns < 0:
        raise BagError("depth_slop_ns and reorder_window_ns must be >= 0")
    stats = stats if stats is not None else FrameStats()
    with open_bag(paths) as bag:
        rgb_conns = bag.find_topic(rgb_topic, "color")
        info_conns = bag.find_topic(info_topic, "camera_info")
        depth_conns = bag.find_topic(depth_topic, "depth") if depth_topic else []
        tf = load_transforms(bag)
        window = max(depth_slop_ns, reorder_window_ns)
        pairer = _Pairer(tf, fixed_frame, depth_topic is not None, depth_slop_ns, window, stats)
        topics = {"rgb": _norm(rgb_topic), "info": _norm(info_topic)}
        for topic, _t, msg in bag.messages(rgb_conns + info_conns + depth_conns):
            stamp = conv.stamp_ns_from_msg(msg.header.stamp)
            if topic == topics["rgb"]:
                stats.color += 1
                pairer.add_color(stamp, conv.image_from_msg(msg), str(msg.header.frame_id))
            elif topic == topics["info"]:
                pairer.add_info(stamp, conv.intrinsics_from_camera_info(msg))
            else:
                pairer.add_depth(stamp, conv.depth_from_msg(msg))
            for frame in pairer.resolve(before_ns=pairer.watermark_ns - window):
                yield frame
                if max_frames is not None and stats.yielded >= max_frames:
                    return
        for frame in pairer.resolve(before_ns=None):
            yield frame
            if max_frames is not None and stats.yielded >= max_frames:
                return
    if stats.color == 0:
        raise BagError(f"color topic {_norm(rgb_topic)!r} holds no messages")
    if stats.yielded == 0 and stats.skipped_no_transform > 0:
        raise TransformError(
            f"no transform from the camera frame(s) {sorted(stats.frames_seen)} to fixed frame "
            f"{fixed_frame!r}; frames in the bag's TF: {', '.join(tf.frames()) or '(none)'}"
        )


class _Pairer:
    """Holds color frames until their depth/camera_info can have arrived; pairs by stamp."""

    def __init__(
        self,
        tf: TransformBuffer,
        fixed_frame: str,
        want_depth: bool,
        slop_ns: int,
        window_ns: int,
        stats: FrameStats,
    ) -> None:
        self.tf, self.fixed_frame, self.want_depth = tf, fixed_frame, want_depth
        self.slop_ns, self.window_ns, self.stats = slop_ns, window_ns, stats
        self.watermark_ns = 0  # newest header stamp seen on any of the streamed topics
        self.last_yielded_ns: int | None = None
        self._seq = 0
        self._pending: list[tuple[int, int, np.ndarray, str]] = []  # sorted (stamp, seq, ...)
        self._info_stamps: list[int] = []
        self._infos: list[tuple[np.ndarray, int, int]] = []
        self._depth_stamps: list[int] = []
        self._depths: list[np.ndarray] = []

    def _seen(self, stamp: int) -> None:
        self.watermark_ns = max(self.watermark_ns, stamp)

    def add_color(self, stamp: int, rgb: np.ndarray, frame_id: str) -> None:
        self._seen(stamp)
        self._seq += 1
        bisect.insort(self._pending, (stamp, self._seq, rgb, frame_id), key=lambda p: p[:2])

    def add_info(self, stamp: int, info: tuple[np.ndarray, int, int]) -> None:
        self._seen(stamp)
        i = bisect.bisect_left(self._info_stamps, stamp)
        if i < len(self._info_stamps) and self._info_stamps[i] == stamp:
            self._infos[i] = info
        else:
            self._info_stamps.insert(i, stamp)
            self._infos.insert(i, info)
        if len(self._infos) > _MAX_INFOS:
            del self._info_stamps[0], self._infos[0]

    def add_depth(self, stamp: int, depth: np.ndarray) -> None:
        self._seen(stamp)
        i = bisect.bisect_right(self._depth_stamps, stamp)
        self._depth_stamps.insert(i, stamp)
        self._depths.insert(i, depth)

    def resolve(self, before_ns: int | None) -> Iterator[BagFrame]:
        """Pair and yield held frames with a stamp < ``before_ns`` (all when None)."""
        while self._pending and (before_ns is None or self._pending[0][0] < before_ns):
            stamp, _seq, rgb, frame_id = self._pending.pop(0)
            frame = self._make_frame(stamp, rgb, frame_id)
            if frame is not None:
                yield frame
        self._drop_old_depths()

    def _drop_old_depths(self) -> None:
        """Depth images that no held or future color frame can pair with (bounded memory)."""
        oldest = self.watermark_ns - self.window_ns  # a color frame older than this is late
        if self._pending:
            oldest = min(oldest, self._pending[0][0])
        cut = bisect.bisect_left(self._depth_stamps, oldest - self.slop_ns)
        if cut > 0:
            del self._depth_stamps[:cut], self._depths[:cut]

    def _info_for(self, stamp: int) -> tuple[np.ndarray, int, int] | None:
        i = bisect.bisect_right(self._info_stamps, stamp)  # infos[i - 1].stamp <= stamp
        if i > 0:
            return self._infos[i - 1]
        if self._info_stamps and self._info_stamps[0] - stamp <= self.slop_ns:
            return self._infos[0]
        return None

    def _depth_for(self, stamp: int) -> np.ndarray | None:
        stamps = self._depth_stamps
        i = bisect.bisect_left(stamps, stamp)
        best = min(
            (j for j in (i - 1, i) if 0 <= j < len(stamps)),
            key=lambda j: abs(stamps[j] - stamp),
            default=None,
        )
        if best is None or abs(stamps[best] - stamp) > self.slop_ns:
            return None
        return self._depths[best]

    def _make_frame(self, stamp: int, rgb: np.ndarray, frame_id: str) -> BagFrame | None:
        stats = self.stats
        if self.last_yielded_ns is not None and stamp <= self.last_yielded_ns:
            stats.skipped_out_of_order += 1
            return None
        stats.frames_seen.add(frame_id)
        info = self._info_for(stamp)
        if info is None:
            stats.skipped_no_camera_info += 1
            return None
        K, width, height = info
        conv.check_image_matches_info((rgb.shape[0], rgb.shape[1]), (width, height))
        depth = None
        if self.want_depth:
            depth = self._depth_for(stamp)
            if depth is None:
                stats.skipped_no_depth += 1
                return None
            if depth.shape != rgb.shape[:2]:
                raise ConversionError(
                    f"depth image {depth.shape[1]}x{depth.shape[0]} does not match color "
                    f"{rgb.shape[1]}x{rgb.shape[0]}"
                )
        try:
            T_world_camera = self.tf.lookup(self.fixed_frame, frame_id, stamp)
        except TransformError:
            stats.skipped_no_transform += 1
            return None
        stats.yielded += 1
        self.last_yielded_ns = stamp
        return BagFrame(stamp, rgb, depth, K, T_world_camera, frame_id)
