"""Reading recorded sessions: rosbag2 (sqlite3, mcap; a folder or one .mcap file) and ROS 1 bags.

Uses the pure-Python ``rosbags`` library (no ROS install). :func:`read_frames` yields paired
RGB-D frames with the camera pose from the same :class:`TransformBuffer` the node uses, so
offline evaluation and the live node see identical poses. Every problem with the input raises
a :class:`MirageError` subclass with a one-line message (missing/misnamed topics list the
topics that exist; a missing TF path names the frames that exist).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirage_ros import conversions as conv
from mirage_ros.core.errors import BagError, ConversionError, MirageError, TransformError
from mirage_ros.transforms import TransformBuffer

__all__ = ["BagFrame", "FrameStats", "bag_summary", "find_topic", "open_reader", "read_frames"]

_CACHE_S = 1e8  # offline: keep every transform of the bag


@dataclass(frozen=True)
class BagFrame:
    """One paired RGB-D frame and its camera pose in the fixed frame."""

    stamp_ns: int
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_m: np.ndarray | None  # (H, W) float32 metres, 0 = invalid
    K: np.ndarray  # (3, 3) float64
    T_world_camera: np.ndarray  # (4, 4) float64
    frame_id: str


@dataclass
class FrameStats:
    """What :func:`read_frames` read and skipped (filled while iterating)."""

    color: int = 0
    yielded: int = 0
    skipped_no_transform: int = 0
    skipped_no_depth: int = 0
    skipped_no_camera_info: int = 0
    frames_seen: set[str] = field(default_factory=set)


def _norm(topic: str) -> str:
    return "/" + topic.lstrip("/")


def open_reader(paths: list[Path]) -> Any:
    """An opened ``rosbags.highlevel.AnyReader`` (close it), or BagError in one line."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not paths:
        raise BagError("no bag given")
    for p in paths:
        if not Path(p).exists():
            raise BagError(f"bag {p} does not exist")
    try:
        reader = AnyReader(
            [Path(p) for p in paths], default_typestore=get_typestore(Stores.ROS2_KILTED)
        )
        reader.open()
    except Exception as exc:  # rosbags raises many types for unreadable input
        raise BagError(f"cannot read {', '.join(map(str, paths))}: {_one_line(exc)}") from exc
    if not reader.connections or reader.message_count == 0:
        reader.close()
        raise BagError(f"{', '.join(map(str, paths))} holds no messages")
    return reader


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def bag_summary(paths: list[Path]) -> dict[str, Any]:
    """Topics with types and counts, duration and message count."""
    reader = open_reader(paths)
    try:
        topics: dict[str, dict[str, Any]] = {}
        for c in reader.connections:
            t = topics.setdefault(_norm(c.topic), {"type": c.msgtype, "count": 0})
            t["count"] += c.msgcount
        return {
            "paths": [str(p) for p in paths],
            "topics": topics,
            "messages": reader.message_count,
            "duration_s": (reader.end_time - reader.start_time) / 1e9,
        }
    finally:
        reader.close()


def find_topic(reader: Any, topic: str, what: str) -> list[Any]:
    """Connections of ``topic`` (with or without a leading slash), or BagError listing topics."""
    conns = [c for c in reader.connections if _norm(c.topic) == _norm(topic)]
    if not conns:
        existing = sorted({f"{_norm(c.topic)} ({c.msgtype})" for c in reader.connections})
        raise BagError(f"{what} topic {topic!r} not found; the bag has: {', '.join(existing)}")
    return conns


def _load_tf(reader: Any) -> TransformBuffer:
    buf = TransformBuffer(cache_time_s=_CACHE_S)
    conns = [c for c in reader.connections if _norm(c.topic) in ("/tf", "/tf_static")]
    for conn, _t, raw in reader.messages(connections=conns):
        msg = reader.deserialize(raw, conn.msgtype)
        buf.add_tf_message(msg, static=_norm(conn.topic) == "/tf_static")
    return buf


def read_frames(
    paths: list[Path],
    rgb_topic: str,
    depth_topic: str | None,
    info_topic: str,
    fixed_frame: str = "map",
    max_frames: int | None = None,
    depth_slop_ns: int = 20_000_000,
    stats: FrameStats | None = None,
) -> Iterator[BagFrame]:
    """Paired frames in stamp order (see module doc). Frames without a transform, camera info
    or depth are skipped and counted in ``stats``; if no frame at all has a transform, raises
    TransformError naming the frames that exist."""
    stats = stats if stats is not None else FrameStats()
    reader = open_reader(paths)
    try:
        rgb_conns = find_topic(reader, rgb_topic, "color")
        info_conns = find_topic(reader, info_topic, "camera_info")
        depth_conns = find_topic(reader, depth_topic, "depth") if depth_topic else []
        try:
            tf = _load_tf(reader)
            yield from _pair(
                reader,
                tf,
                rgb_conns,
                info_conns,
                depth_conns,
                fixed_frame,
                max_frames,
                depth_slop_ns,
                stats,
            )
        except MirageError:
            raise
        except Exception as exc:
            raise BagError(f"bag is truncated or corrupt: {_one_line(exc)}") from exc
    finally:
        reader.close()


def _pair(
    reader: Any,
    tf: TransformBuffer,
    rgb_conns: list[Any],
    info_conns: list[Any],
    depth_conns: list[Any],
    fixed_frame: str,
    max_frames: int | None,
    slop_ns: int,
    stats: FrameStats,
) -> Iterator[BagFrame]:
    rgb_topics = {_norm(c.topic) for c in rgb_conns}
    info_topics = {_norm(c.topic) for c in info_conns}
    infos: collections.OrderedDict[int, tuple[np.ndarray, int, int]] = collections.OrderedDict()
    depths: collections.deque[tuple[int, np.ndarray]] = collections.deque(maxlen=256)
    pending: collections.deque[tuple[int, np.ndarray, str]] = collections.deque()
    last_info: tuple[np.ndarray, int, int] | None = None
    latest_ns = 0

    def resolve(final: bool) -> Iterator[BagFrame]:
        while pending:
            stamp, rgb, frame_id = pending[0]
            if not final and latest_ns <= stamp + slop_ns:
                return  # a matching depth or info may still arrive
            pending.popleft()
            frame = _make_frame(stamp, rgb, frame_id)
            if frame is not None:
                yield frame

    def _make_frame(stamp: int, rgb: np.ndarray, frame_id: str) -> BagFrame | None:
        info = infos.get(stamp, last_info)
        if info is None:
            stats.skipped_no_camera_info += 1
            return None
        K, width, height = info
        conv.check_image_matches_info(rgb.shape[:2], (width, height))
        depth = None
        if depth_conns:
            best = min(depths, key=lambda d: abs(d[0] - stamp), default=None)
            if best is None or abs(best[0] - stamp) > slop_ns:
                stats.skipped_no_depth += 1
                return None
            depth = best[1]
            if depth.shape != rgb.shape[:2]:
                raise ConversionError(
                    f"depth image {depth.shape[1]}x{depth.shape[0]} does not match color "
                    f"{rgb.shape[1]}x{rgb.shape[0]}"
                )
        stats.frames_seen.add(frame_id)
        try:
            T = tf.lookup(fixed_frame, frame_id, stamp)
        except TransformError:
            stats.skipped_no_transform += 1
            return None
        stats.yielded += 1
        return BagFrame(stamp, rgb, depth, K, T, frame_id)

    wanted = rgb_conns + info_conns + depth_conns
    for conn, t, raw in reader.messages(connections=wanted):
        if max_frames is not None and stats.yielded >= max_frames:
            break
        msg = reader.deserialize(raw, conn.msgtype)
        stamp = conv.stamp_ns_from_msg(msg.header.stamp)
        latest_ns = max(latest_ns, int(t), stamp)
        if _norm(conn.topic) in info_topics:
            last_info = conv.intrinsics_from_camera_info(msg)
            infos[stamp] = last_info
            while len(infos) > 256:
                infos.popitem(last=False)
        elif _norm(conn.topic) in rgb_topics:
            stats.color += 1
            pending.append((stamp, conv.image_from_msg(msg), str(msg.header.frame_id)))
        else:
            depths.append((stamp, conv.depth_from_msg(msg)))
        for frame in resolve(final=False):
            yield frame
            if max_frames is not None and stats.yielded >= max_frames:
                return
    for frame in resolve(final=True):
        yield frame
        if max_frames is not None and stats.yielded >= max_frames:
            return
    if stats.color > 0 and stats.yielded == 0 and stats.skipped_no_transform > 0:
        raise TransformError(
            f"no transform from the camera frame(s) {sorted(stats.frames_seen)} to fixed frame "
            f"{fixed_frame!r}; frames in the bag's TF: {', '.join(tf.frames()) or '(none)'}"
        )
