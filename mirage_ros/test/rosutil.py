"""Helpers for system tests: the node in its own process, a client in the test process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mirage_ros.procutil import stop_process

NODE_NAME = "mirage"
_COUNTER = [0]


def start_node(
    tmp: Path,
    *params: str,
    log_name: str = "node.log",
    ns: str | None = None,
    remaps: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start mirage_node as its own process (DDS settings inherited from conftest).

    Each node gets a namespace of its own (``proc.ns``), so a node of another test that is
    still shutting down can never answer this test's requests.
    """
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
    if ns is None:
        _COUNTER[0] += 1
        ns = f"/t{os.getpid()}_{_COUNTER[0]}"
    cmd = [
        sys.executable,
        "-m",
        "mirage_ros.node",
        "--ros-args",
        "-p",
        "device:=cpu",
        "-p",
        f"memory_dir:={tmp}",
        "-p",
        "transform_wait_s:=5.0",
        "-p",
        "status_rate_hz:=5.0",
        "-p",
        "sensor_qos:=reliable",  # the tests count frames: no best-effort losses
        "-p",
        "queue_size:=64",  # ... and no queue drops when a loaded machine lags a burst
        "-r",
        f"__ns:={ns}",
    ]
    weights = os.environ.get("MIRAGE_TEST_WEIGHTS")  # developers: try other codec weights
    if weights:
        cmd += ["-p", f"weights_path:={weights}"]
    for p in params:
        cmd += ["-p", p]
    for rule in remaps:
        cmd += ["-r", rule]
    log = open(tmp / log_name, "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    proc.ns = ns  # type: ignore[attr-defined]
    return proc


def stop_node(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    return stop_process(proc, sig)


class Client:
    """An rclpy node in the test process, spun by a background executor."""

    def __init__(self, name: str = "mirage_test_client") -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name)
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._pubs: dict[str, Any] = {}
        self.status: list[Any] = []
        self.ns = ""

    def attach(self, proc: Any) -> None:
        """Talk to the node started as ``proc`` (its namespace) from now on."""
        from mirage_ros_interfaces.msg import MemoryStatus

        if proc.ns == self.ns:
            return
        self.ns = proc.ns
        self.status.clear()
        self.node.create_subscription(
            MemoryStatus, self.topic(f"{NODE_NAME}/status"), self.status.append, 10
        )

    def topic(self, relative: str) -> str:
        """A topic or service name relative to the attached node's namespace."""
        return f"{self.ns}/{relative}"

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def client(self, srv_type: Any, name: str, timeout_s: float = 60.0) -> Any:
        cli = self.node.create_client(srv_type, self.topic(f"{NODE_NAME}/{name}"))
        assert cli.wait_for_service(timeout_sec=timeout_s), f"service {name} not available"
        return cli

    def call(self, cli: Any, request: Any, timeout_s: float = 120.0) -> Any:
        return wait_future(cli.call_async(request), timeout_s)

    def publisher(self, msg_type: Any, topic: str, latched: bool = False) -> Any:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        if topic not in self._pubs:
            qos = QoSProfile(
                depth=100,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL
                if latched
                else DurabilityPolicy.VOLATILE,
            )
            self._pubs[topic] = self.node.create_publisher(msg_type, topic, qos)
        return self._pubs[topic]

    def wait_settled(self, min_integrated: int, timeout_s: float = 120.0) -> Any:
        """Wait until the node integrated ``min_integrated`` frames and its queue is empty and
        every received frame is accounted for (integrated or dropped); returns the status."""

        def settled() -> bool:
            s = self.latest_status()
            if s is None or s.frames_integrated < min_integrated or s.queue_length:
                return False
            drops = s.dropped_queue_full + s.dropped_no_transform + s.dropped_bad_input
            return bool(s.frames_integrated + drops + s.dropped_rate_limit >= s.frames_received)

        try:
            wait_until(settled, timeout_s, f"{min_integrated} frames integrated and settled")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {self.latest_status()}") from None
        n = len(self.status)
        wait_until(lambda: len(self.status) > n, 10, "one more status")
        return self.latest_status()

    def latest_status(self) -> Any:
        return self.status[-1] if self.status else None

    def publish_frames(
        self,
        frames: list[Any],
        camera_ns: str = "camera",
        camera_frame: str = "camera_color_optical_frame",
        depth_encoding: str = "16UC1",
    ) -> None:
        """Publish TF (static + dynamic), camera info, color and depth for each frame."""
        from geometry_msgs.msg import TransformStamped
        from sensor_msgs.msg import CameraInfo, Image
        from tf2_msgs.msg import TFMessage

        from mirage_ros import conversions as conv

        def tf(parent: str, child: str, T: np.ndarray, stamp_ns: int) -> TransformStamped:
            t = TransformStamped()
            t.header.frame_id, t.child_frame_id = parent, child
            conv.fill_stamp(t.header.stamp, stamp_ns)
            conv.fill_transform_msg(t.transform, T)
            return t

        first = frames[0]
        base = f"base_link_{camera_ns}" if camera_ns != "camera" else "base_link"
        self.publisher(TFMessage, "/tf_static", latched=True).publish(
            TFMessage(transforms=[tf(base, camera_frame, first.T_base_camera, 0)])
        )
        for f in frames:
            self.publisher(TFMessage, "/tf").publish(
                TFMessage(
                    transforms=[
                        tf("map", f"odom_{camera_ns}", f.T_map_odom, f.stamp_ns),
                        tf(f"odom_{camera_ns}", base, f.T_odom_base, f.stamp_ns),
                    ]
                )
            )
            info = CameraInfo()
            conv.fill_camera_info_msg(info, f.K, f.rgb.shape[1], f.rgb.shape[0])
            color, depth = Image(), Image()
            for m in (info, color, depth):
                m.header.frame_id = camera_frame
                conv.fill_stamp(m.header.stamp, f.stamp_ns)
            conv.fill_image_msg(color, f.rgb, "rgb8")
            if depth_encoding == "16UC1":
                mm = np.round(f.depth_m * 1000.0).astype(np.uint16)
                depth.height, depth.width = mm.shape
                depth.encoding, depth.step = "16UC1", mm.shape[1] * 2
                depth.data = mm.tobytes()
            else:
                conv.fill_depth_msg(depth, f.depth_m, "32FC1")
            self.publisher(CameraInfo, self.topic(f"{camera_ns}/color/camera_info")).publish(info)
            self.publisher(Image, self.topic(f"{camera_ns}/depth/image_raw")).publish(depth)
            self.publisher(Image, self.topic(f"{camera_ns}/color/image_raw")).publish(color)
            time.sleep(0.02)


def wait_future(future: Any, timeout_s: float) -> Any:
    end = time.monotonic() + timeout_s
    while not future.done():
        assert time.monotonic() < end, "no answer in time"
        time.sleep(0.005)
    return future.result()


def wait_until(cond: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    err = (a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2
    if mask is not None:
        err = err[mask]
    return float(10 * np.log10(1.0 / max(float(err.mean()), 1e-12)))
