"""`mirage replay BAG`: play a recorded bag into a live ROS 2 graph (a `ros2 bag play` stand-in).

Honours recorded timing (scaled by ``--rate``), publishes ``/clock`` from the bag's time (for
nodes with ``use_sim_time``), republishes ``/tf_static`` latched (transient local), and sends the
bag's serialized bytes as they are (ROS 1 bags are converted to CDR), so no message is decoded
and re-encoded on the way. ``--holdout-every K`` withholds every K-th color frame (and its depth
and camera info), as the evaluation protocol does, so a client can predict those views.

This tool and the demo are ROS clients: like node.py they import rclpy, but only when run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mirage_ros.core.errors import BagError
from mirage_ros.dds import use_large_image_profile

__all__ = ["add_arguments", "held_out_stamps", "iter_bag_messages", "play", "run"]

COLOR_SUFFIX = "color/image_raw"


def _norm(topic: str) -> str:
    return "/" + topic.lstrip("/")


def iter_bag_messages(paths: list[Path]) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield (topic, msgtype, bag time ns, CDR bytes) in bag-time order."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    for p in paths:
        if not p.exists():
            raise BagError(f"bag {p} does not exist")
    try:
        reader = AnyReader(paths, default_typestore=get_typestore(Stores.ROS2_KILTED))
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for bad files
        raise BagError(f"cannot open {', '.join(map(str, paths))}: {exc}") from exc
    try:
        is_ros1 = not reader.is2 if hasattr(reader, "is2") else False
        typestore = get_typestore(Stores.ROS2_KILTED)
        for conn, stamp, raw in reader.messages():
            data = bytes(raw)
            if is_ros1:
                data = bytes(typestore.ros1_to_cdr(raw, conn.msgtype))
            yield _norm(conn.topic), conn.msgtype, int(stamp), data
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f"bag is truncated or corrupt: {exc}") from exc
    finally:
        reader.close()


def held_out_stamps(paths: list[Path], every: int, rgb_topic: str = COLOR_SUFFIX) -> list[int]:
    """Header stamps (ns) of the color frames withheld by ``--holdout-every every``."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out: list[int] = []
    with AnyReader(paths, default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        conns = [c for c in reader.connections if _norm(c.topic) == _norm(rgb_topic)]
        for index, (conn, _t, raw) in enumerate(reader.messages(connections=conns)):
            if every > 0 and index % every == every - 1:
                msg = reader.deserialize(raw, conn.msgtype)
                out.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
    return out


def _message_class(msgtype: str) -> Any:
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _header_stamp_ns(data: bytes) -> int:
    # std_msgs/Header is the first field of every stamped message: CDR header (4 bytes) then
    # int32 sec, uint32 nanosec, little-endian in the common case.
    if len(data) < 12:
        return -1
    big = data[1] == 0
    order = "big" if big else "little"
    sec = int.from_bytes(data[4:8], order, signed=True)
    nsec = int.from_bytes(data[8:12], order)
    return sec * 1_000_000_000 + nsec


def play(
    node: Any,
    paths: list[Path],
    rate: float = 1.0,
    clock: bool = True,
    holdout_every: int = 0,
    camera_prefix: str = "/camera/",
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Publish the bag through ``node``; returns counts of published and withheld messages."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    latched = QoSProfile(
        depth=100,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    pubs: dict[str, Any] = {}
    clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None
    withheld: set[int] = set()
    color_index = 0
    counts = {"published": 0, "withheld": 0}
    t0_wall = time.monotonic()
    t0_bag: int | None = None
    for topic, msgtype, stamp, data in iter_bag_messages(paths):
        if should_stop():
            break
        if topic not in pubs:
            qos = latched if topic == "/tf_static" else reliable
            pubs[topic] = node.create_publisher(_message_class(msgtype), topic, qos)
        if t0_bag is None:
            t0_bag = stamp
        if rate > 0:
            delay = (stamp - t0_bag) / 1e9 / rate - (time.monotonic() - t0_wall)
            if delay > 0:
                time.sleep(delay)
        if holdout_every > 0 and topic.startswith(camera_prefix):
            header_ns = _header_stamp_ns(data)
            if topic.endswith(COLOR_SUFFIX):
                if color_index % holdout_every == holdout_every - 1:
                    withheld.add(header_ns)
                color_index += 1
            if header_ns in withheld:
                counts["withheld"] += 1
                continue
        if clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(stamp, 1_000_000_000)
            clock_pub.publish(msg)
        pubs[topic].publish(data)
        counts["published"] += 1
        if progress is not None:
            progress(counts["published"])
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", nargs="+", type=Path, help="rosbag2 directory/file or ROS 1 bag")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="playback speed factor (0 = as fast as possible)"
    )
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument(
        "--holdout-every", type=int, default=0, help="withhold every K-th color frame (0 = none)"
    )
    parser.add_argument("--loop", action="store_true", help="play again and again")


def run(args: argparse.Namespace) -> int:
    import rclpy

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    use_large_image_profile()
    rclpy.init()
    node = rclpy.create_node("mirage_replay")
    try:
        time.sleep(0.5)  # let discovery find subscribers before the first (latched) messages
        while True:
            counts = play(
                node,
                list(args.bag),
                rate=args.rate,
                clock=not args.no_clock,
                holdout_every=args.holdout_every,
            )
            print(
                f"mirage replay: published {counts['published']} messages, "
                f"withheld {counts['withheld']}"
            )
            if not args.loop:
                break
        time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
