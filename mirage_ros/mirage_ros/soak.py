"""`mirage soak`: run the node under sustained load and record whether it stays healthy.

Load (defaults): a 30 Hz 320x240 synthetic RGB-D camera, 100 Hz /tf, 5 Hz ~/predict_views
requests and a ~/save_memory every minute, against ``mirage_node`` in its own process with a
small memory budget so eviction is exercised. Recorded once a second: memory bytes (vs budget),
process RSS, node queue length, dropped frames; and every service call's outcome and latency.
Writes the figures as JSON and prints a summary. Healthy means: memory never above budget and
plateaued, RSS growth in the second half small, queue bounded, zero failed service calls.

A ROS client like replay/demo: imports rclpy when run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from mirage_ros.core.errors import ConfigError, MirageError
from mirage_ros.dds import use_large_image_profile
from mirage_ros.procutil import stop_process, thread_cpu_s

__all__ = ["add_arguments", "run", "soak"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration-s", type=float, default=600.0, help="how long to run")
    parser.add_argument("--out", type=Path, default=Path("soak_output/soak.json"))
    parser.add_argument("--camera-hz", type=float, default=30.0)
    parser.add_argument("--tf-hz", type=float, default=100.0)
    parser.add_argument("--predict-hz", type=float, default=5.0)
    parser.add_argument("--save-period-s", type=float, default=60.0)
    parser.add_argument("--resolution", default="320x240")
    parser.add_argument(
        "--budget-mb", type=float, default=2.0, help="node memory budget (small: eviction runs)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="", help="codec weights (default: shipped)")
    parser.add_argument(
        "--roundtrip-views",
        type=int,
        default=0,
        help="after the load: this many one-view predict_views calls, timed end to end",
    )
    parser.add_argument("--roundtrip-resolution", default="640x480")
    parser.add_argument(
        "--node-param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="a parameter for the node under test (repeatable), e.g. gil_switch_interval_ms:=5.0",
    )


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def soak(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy
    from geometry_msgs.msg import PoseStamped, TransformStamped
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage

    from mirage_ros import conversions as conv
    from mirage_ros.sim import SceneConfig, SyntheticSequence
    from mirage_ros_interfaces.msg import MemoryStatus
    from mirage_ros_interfaces.srv import MemoryFile, PredictViews

    width, height = (int(v) for v in args.resolution.lower().split("x"))
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    seq = SyntheticSequence(
        SceneConfig(seed=11, frames=60, width=width, height=height, texture_set="test")
    )
    frames = list(seq)
    import subprocess
    import sys

    use_large_image_profile()  # this process and the node it starts
    ns = f"/soak_{os.getpid()}"  # a namespace of its own: no other node can interfere
    node_cmd = [
        sys.executable,
        "-m",
        "mirage_ros.node",
        "--ros-args",
        "-p",
        f"device:={args.device}",
        "-p",
        f"memory_dir:={out_dir.resolve()}",
        "-p",
        f"memory.max_memory_mb:={args.budget_mb}",
        "-p",
        "status_rate_hz:=2.0",
        "-p",
        "cloud_period_s:=0.0",
        "-r",
        f"__ns:={ns}",
    ]
    if args.weights:
        node_cmd += ["-p", f"weights_path:={args.weights}"]
    for param in args.node_param:
        if ":=" not in param:
            raise ConfigError(f"--node-param must look like NAME:=VALUE, got {param!r}")
        node_cmd += ["-p", param]
    log = open(out_dir / "soak_node.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(node_cmd, stdout=log, stderr=subprocess.STDOUT)
    # a context of its own: the caller (a test) may use rclpy already
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("mirage_soak", context=context)
    from rclpy.executors import MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    import threading

    threading.Thread(target=executor.spin, daemon=True).start()
    status: list[MemoryStatus] = []
    node.create_subscription(MemoryStatus, f"{ns}/mirage/status", status.append, 10)
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    latched = QoSProfile(
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    pub_static = node.create_publisher(TFMessage, "/tf_static", latched)
    pub_tf = node.create_publisher(TFMessage, "/tf", 100)
    pub_info = node.create_publisher(CameraInfo, f"{ns}/camera/color/camera_info", 10)
    pub_rgb = node.create_publisher(Image, f"{ns}/camera/color/image_raw", 10)
    pub_depth = node.create_publisher(Image, f"{ns}/camera/depth/image_raw", 10)
    predict = node.create_client(PredictViews, f"{ns}/mirage/predict_views")
    save = node.create_client(MemoryFile, f"{ns}/mirage/save_memory")
    samples: list[dict[str, Any]] = []
    calls = {"predict_ok": 0, "predict_failed": 0, "save_ok": 0, "save_failed": 0}
    predict_ms: list[float] = []
    failures: list[str] = []
    virtual_camera = CameraInfo()  # the camera of the stream, so requests never wait for one
    conv.fill_camera_info_msg(virtual_camera, frames[0].K, width, height)
    try:
        if not predict.wait_for_service(timeout_sec=120):
            raise MirageError("soak: mirage_node did not start (see soak_node.log)")

        def tf(parent: str, child: str, T: np.ndarray, stamp_ns: int) -> TransformStamped:
            t = TransformStamped()
            t.header.frame_id, t.child_frame_id = parent, child
            conv.fill_stamp(t.header.stamp, stamp_ns)
            conv.fill_transform_msg(t.transform, T)
            return t

        pub_static.publish(
            TFMessage(
                transforms=[
                    tf("base_link", "camera_color_optical_frame", frames[0].T_base_camera, 0)
                ]
            )
        )
        # Pre-build the camera messages once; stamps are rewritten as time goes on.
        msgs = []
        for f in frames:
            info, rgb, depth = CameraInfo(), Image(), Image()
            conv.fill_camera_info_msg(info, f.K, width, height)
            conv.fill_image_msg(rgb, f.rgb, "rgb8")
            conv.fill_depth_msg(depth, f.depth_m, "32FC1")
            for m in (info, rgb, depth):
                m.header.frame_id = "camera_color_optical_frame"
            msgs.append((info, rgb, depth))
        period = seq.config.frames / seq.config.camera_rate_hz  # loop length of the trajectory
        t0 = time.monotonic()
        next_cam = next_tf = next_pred = next_sample = t0
        if args.predict_hz <= 0:
            next_pred = float("inf")  # no requests during the load
        frames_published = 0
        next_save = t0 + args.save_period_s
        pending_pred: list[tuple[float, Any]] = []
        pending_save: list[Any] = []

        def collect(timing: bool) -> None:
            """Count the finished calls (with ``timing``, keep the predict latencies); keep the
            first failures' messages."""
            done = [(t, f) for t, f in pending_pred if f.done()]
            done += [(None, f) for f in pending_save if f.done()]
            for started, fut in done:
                kind = "save" if started is None else "predict"
                if started is None:
                    pending_save.remove(fut)
                else:
                    pending_pred.remove((started, fut))
                    if timing:
                        predict_ms.append((time.monotonic() - started) * 1e3)
                ok = fut.result() is not None and fut.result().success
                calls[f"{kind}_{'ok' if ok else 'failed'}"] += 1
                if not ok and len(failures) < 10:
                    failures.append(getattr(fut.result(), "message", "no response"))

        epoch_ns = time.time_ns()
        cpu_start = thread_cpu_s(proc.pid)
        while (now := time.monotonic()) - t0 < args.duration_s:
            if proc.poll() is not None:
                raise MirageError(f"soak: the node exited with {proc.returncode}")
            elapsed = now - t0
            stamp_ns = epoch_ns + int(elapsed * 1e9)
            loop_t = elapsed % period
            if now >= next_tf:
                T_map_odom, T_odom_base = seq.poses_at(seq.start_ns + int(loop_t * 1e9))
                pub_tf.publish(
                    TFMessage(
                        transforms=[
                            tf("map", "odom", T_map_odom, stamp_ns),
                            tf("odom", "base_link", T_odom_base, stamp_ns),
                        ]
                    )
                )
                next_tf += 1.0 / args.tf_hz
            if now >= next_cam:
                i = int(loop_t * seq.config.camera_rate_hz) % len(frames)
                T_map_odom, T_odom_base = seq.poses_at(seq.stamps_ns[i])
                pub_tf.publish(
                    TFMessage(
                        transforms=[
                            tf("map", "odom", T_map_odom, stamp_ns),
                            tf("odom", "base_link", T_odom_base, stamp_ns),
                        ]
                    )
                )
                for m in msgs[i]:
                    conv.fill_stamp(m.header.stamp, stamp_ns)
                info, rgb, depth = msgs[i]
                pub_info.publish(info)
                pub_depth.publish(depth)
                pub_rgb.publish(rgb)
                frames_published += 1
                next_cam += 1.0 / args.camera_hz
            if now >= next_pred:
                p = PoseStamped()
                p.header.frame_id = "map"
                conv.fill_pose_msg(p.pose, frames[int(elapsed * 7) % len(frames)].T_world_camera)
                req = PredictViews.Request(poses=[p], camera_info=virtual_camera)
                pending_pred.append((now, predict.call_async(req)))
                next_pred += 1.0 / args.predict_hz
            if now >= next_save:
                pending_save.append(save.call_async(MemoryFile.Request(path="soak.safetensors")))
                next_save += args.save_period_s
            collect(timing=True)
            if now >= next_sample and status:
                s = status[-1]
                samples.append(
                    {
                        "t_s": round(elapsed, 2),
                        "memory_bytes": s.memory_bytes,
                        "budget_bytes": s.budget_bytes,
                        "voxels": s.voxels,
                        "rss_bytes": _rss_bytes(proc.pid),
                        "device_memory_bytes": s.device_memory_bytes,
                        "queue": s.queue_length,
                        "integrated": s.frames_integrated,
                        "dropped_queue_full": s.dropped_queue_full,
                        "dropped_unpaired": s.dropped_no_transform,
                    }
                )
                next_sample += 1.0
            time.sleep(0.001)
        cpu_end = thread_cpu_s(proc.pid)
        end = time.monotonic() + 60
        while (pending_pred or pending_save) and time.monotonic() < end:
            collect(timing=False)  # answers after the load: counted, not timed
            time.sleep(0.01)
        calls["predict_failed"] += len(pending_pred)
        calls["save_failed"] += len(pending_save)
        if pending_pred or pending_save:
            failures.append(
                f"{len(pending_pred)} predict and {len(pending_save)} save calls unanswered "
                "60 s after the load"
            )

        # settled: the queue is empty and every published frame has arrived and been counted
        # (a status with an empty queue can be sent before the last frames arrive over DDS);
        # frames dropped unpaired are not in the status, so fall back to an empty queue
        def accounted(s: Any) -> bool:
            seen = s.frames_integrated + s.dropped_queue_full + s.dropped_no_transform
            seen += s.dropped_bad_input + s.dropped_rate_limit
            return bool(s.queue_length == 0 and seen >= frames_published)

        settled = _wait_for_status(status, accounted, 10.0) or _wait_for_status(
            status, lambda s: s.queue_length == 0, 30.0
        )
        ingest = {
            "frames_published": frames_published,
            "frames_integrated": settled.frames_integrated if settled else None,
            # the node's own median time per frame (encode + integrate, on its worker)
            "node_integrate_ms_p50": round(float(status[-1].integrate_ms_p50), 2)
            if status
            else None,
        }
        roundtrip = None
        if args.roundtrip_views > 0:
            roundtrip = _roundtrip(args, predict, frames, status, calls)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        stop_process(proc, timeout_s=30.0)
        log.close()
    report = _report(args, samples, calls, predict_ms)
    report["ingest"] = ingest
    if roundtrip is not None:
        report["roundtrip"] = roundtrip
    report["failure_messages"] = failures
    # the node's threads by name, CPU seconds during the load: the worker, the sensor thread,
    # the spin (main) thread, the callback pool, DDS
    report["node_thread_cpu_s"] = {
        name: round(cpu_end[name] - cpu_start.get(name, 0.0), 2)
        for name in sorted(cpu_end, key=lambda n: cpu_start.get(n, 0.0) - cpu_end[n])
        if cpu_end[name] - cpu_start.get(name, 0.0) > 0.0
    }
    return report


def _wait_for_status(status: list[Any], condition: Any, timeout_s: float) -> Any:
    """The first ~/status message (arriving from now on) that meets ``condition``, or None."""
    seen = len(status)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        fresh = status[seen:]
        for s in fresh:
            if condition(s):
                return s
        seen += len(fresh)
        time.sleep(0.05)
    return None


def _roundtrip(
    args: argparse.Namespace, predict: Any, frames: list[Any], status: list[Any], calls: Any
) -> dict[str, Any]:
    """One-view predict_views calls, one at a time, at --roundtrip-resolution: the client's
    round trip, and the node's own render+decode time (its ~/status predict_ms_p50, a median
    over its latest 200 predictions, which are these calls when the load made none)."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo

    from mirage_ros import conversions as conv
    from mirage_ros_interfaces.srv import PredictViews

    width, height = (int(v) for v in args.roundtrip_resolution.lower().split("x"))
    K = frames[0].K.copy()
    K[0] *= width / frames[0].rgb.shape[1]
    K[1] *= height / frames[0].rgb.shape[0]
    camera = CameraInfo()
    conv.fill_camera_info_msg(camera, K, width, height)
    served_before = status[-1].predictions_served if status else 0
    round_trip_ms: list[float] = []
    for i in range(args.roundtrip_views):
        p = PoseStamped()
        p.header.frame_id = "map"
        conv.fill_pose_msg(p.pose, frames[(i * 7) % len(frames)].T_world_camera)
        request = PredictViews.Request(poses=[p], camera_info=camera, with_confidence=True)
        t0 = time.perf_counter()
        future = predict.call_async(request)
        while not future.done():
            time.sleep(0.0005)
        round_trip_ms.append((time.perf_counter() - t0) * 1e3)
        ok = future.result() is not None and future.result().success
        calls["predict_ok" if ok else "predict_failed"] += 1
    want = served_before + args.roundtrip_views
    node_status = _wait_for_status(status, lambda s: s.predictions_served >= want, 10.0)
    client_p50 = float(np.median(round_trip_ms))
    node_p50 = float(node_status.predict_ms_p50) if node_status else None
    return {
        "views": args.roundtrip_views,
        "resolution": args.roundtrip_resolution,
        "with_confidence": True,
        "client_round_trip_ms_p50": round(client_p50, 1),
        "client_round_trip_ms_p95": round(float(np.percentile(round_trip_ms, 95)), 1),
        "node_render_decode_ms_p50": round(node_p50, 1) if node_p50 is not None else None,
        "transport_and_messages_ms_p50": (
            round(client_p50 - node_p50, 1) if node_p50 is not None else None
        ),
    }


def _report(
    args: argparse.Namespace,
    samples: list[dict[str, Any]],
    calls: dict[str, int],
    predict_ms: list[float],
) -> dict[str, Any]:
    if len(samples) < 4:
        raise MirageError("soak: too few status samples (did the node publish ~/status?)")
    half = samples[len(samples) // 2 :]
    rss_half = [s["rss_bytes"] for s in half]
    mem = [s["memory_bytes"] for s in samples]
    budget = samples[-1]["budget_bytes"]
    report = {
        "duration_s": args.duration_s,
        "load": {
            "camera_hz": args.camera_hz,
            "tf_hz": args.tf_hz,
            "predict_hz": args.predict_hz,
            "save_period_s": args.save_period_s,
            "resolution": args.resolution,
            "device": args.device,
        },
        "memory_bytes_max": max(mem),
        "budget_bytes": budget,
        "memory_within_budget": max(mem) <= budget,
        "memory_bytes_last": mem[-1],
        "rss_bytes_first_half_end": rss_half[0],
        "rss_bytes_last": rss_half[-1],
        "rss_growth_second_half_mb": round((rss_half[-1] - rss_half[0]) / 2**20, 2),
        "device_memory_bytes_last": half[-1]["device_memory_bytes"],
        "device_memory_growth_second_half_mb": round(
            (half[-1]["device_memory_bytes"] - half[0]["device_memory_bytes"]) / 2**20, 2
        ),
        "queue_max": max(s["queue"] for s in samples),
        "frames_integrated": samples[-1]["integrated"],
        "dropped_queue_full": samples[-1]["dropped_queue_full"],
        "dropped_unpaired": samples[-1]["dropped_unpaired"],
        "calls": calls,
        "failed_calls": calls["predict_failed"] + calls["save_failed"],
        "predict_ms_p50": round(float(np.median(predict_ms)), 1) if predict_ms else None,
        "predict_ms_p95": round(float(np.percentile(predict_ms, 95)), 1) if predict_ms else None,
        "samples": samples,
    }
    return report


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    report = soak(args)
    Path(args.out).write_text(json.dumps(report, indent=2))
    short = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(short, indent=2))
    healthy = report["memory_within_budget"] and report["failed_calls"] == 0
    return 0 if healthy else 1
