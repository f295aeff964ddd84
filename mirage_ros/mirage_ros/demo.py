"""`mirage demo`: the main job, end to end over a real ROS 2 graph.

1. generates the default synthetic scene and writes it as a rosbag2 (mcap);
2. starts ``mirage_node`` as its own process (``use_sim_time``);
3. plays the bag into it over DDS with ``mirage replay``'s player, withholding every 5th frame;
4. calls ``~/predict_views`` at the withheld poses (revisits and never-seen places) and
   ``~/predict_trajectory`` along the path ahead of the robot;
5. saves the memory, resets it, loads it back and checks the prediction is identical;
6. writes ``demo_output/`` (image grid, metrics.json, summary.txt) and prints the summary.

Like replay.py this is a ROS client: it imports rclpy when run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mirage_ros.core.errors import MirageError
from mirage_ros.dds import use_large_image_profile
from mirage_ros.procutil import stop_process

__all__ = ["add_arguments", "run"]

HOLDOUT_EVERY = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output directory")
    parser.add_argument("--seed", type=int, default=7, help="scene seed (evaluation seeds < 1000)")
    parser.add_argument("--frames", type=int, default=200, help="frames in the replayed bag")
    parser.add_argument(
        "--ahead", type=int, default=12, help="poses previewed along the path ahead"
    )
    parser.add_argument("--resolution", default="320x240", help="WxH of the generated camera")
    parser.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    parser.add_argument("--device", default="auto", help="node device: auto, cpu or cuda")
    parser.add_argument("--weights", default="", help="codec weights (default: shipped)")


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    a = a.astype(np.float64) / 255.0
    b = b.astype(np.float64) / 255.0
    err = (a - b) ** 2
    if mask is not None:
        if not mask.any():
            return None
        err = err[mask]
    mse = float(err.mean())
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def _wait(future: Any, timeout_s: float, what: str) -> Any:
    end = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > end:
            raise MirageError(f"demo: {what} did not answer within {timeout_s:.0f} s")
        time.sleep(0.01)
    return future.result()


def _view_arrays(view: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from mirage_ros import conversions as conv

    rgb = conv.image_from_msg(view.image)
    conf = np.frombuffer(bytes(view.confidence.data), dtype=np.float32).reshape(rgb.shape[:2])
    depth = np.frombuffer(bytes(view.depth.data), dtype=np.float32).reshape(rgb.shape[:2])
    return rgb, conf, depth


def run(args: argparse.Namespace) -> int:
    from mirage_ros.sim import SceneConfig, SyntheticSequence, write_bag

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    use_large_image_profile()  # this process and the node it starts
    width, height = (int(v) for v in args.resolution.lower().split("x"))
    t_start = time.monotonic()

    # 1. The scene: the bag holds `frames` frames; the `ahead` frames after it are the path ahead.
    print(
        f"[demo] generating scene seed {args.seed}: {args.frames}+{args.ahead} frames "
        f"{width}x{height}"
    )
    full = SyntheticSequence(
        SceneConfig(
            seed=args.seed,
            frames=args.frames + args.ahead,
            width=width,
            height=height,
            texture_set="test",
        )
    )
    frames = list(full)
    bag_path = out / "scene_bag"
    if bag_path.exists():
        import shutil

        shutil.rmtree(bag_path)
    replayed = SyntheticSequence(
        SceneConfig(
            seed=args.seed, frames=args.frames, width=width, height=height, texture_set="test"
        )
    )
    write_bag(replayed, bag_path, storage="mcap")
    print(f"[demo] wrote {bag_path} ({time.monotonic() - t_start:.1f} s)")

    # 2. The node, as its own process.
    node_log = open(out / "node.log", "w")  # noqa: SIM115 - closed after the node exits
    node_cmd = [
        sys.executable,
        "-m",
        "mirage_ros.node",
        "--ros-args",
        "-p",
        "use_sim_time:=true",
        "-p",
        f"device:={args.device}",
        "-p",
        f"memory_dir:={out.resolve()}",
        "-p",
        "queue_size:=64",
        "-p",
        "transform_wait_s:=5.0",
        "-p",
        "sensor_qos:=reliable",  # the replay is reliable: lose no frame on a loaded machine
    ]
    if args.weights:
        node_cmd += ["-p", f"weights_path:={args.weights}"]
    node_proc = subprocess.Popen(node_cmd, stdout=node_log, stderr=subprocess.STDOUT)
    try:
        metrics = _drive(args, out, frames, bag_path, node_proc)
    finally:
        stop_process(node_proc)
        node_log.close()
    metrics["wall_s"] = round(time.monotonic() - t_start, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    summary = _summary(metrics, out)
    (out / "summary.txt").write_text(summary + "\n")
    print(summary)
    return 0 if metrics["reload_identical"] else 1


def _drive(
    args: argparse.Namespace,
    out: Path,
    frames: list[Any],
    bag_path: Path,
    node_proc: subprocess.Popen[bytes],
) -> dict[str, Any]:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path as PathMsg
    from rclpy.action import ActionClient
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import CameraInfo
    from std_srvs.srv import Trigger

    from mirage_ros import conversions as conv
    from mirage_ros.replay import play
    from mirage_ros_interfaces.action import PredictTrajectory
    from mirage_ros_interfaces.msg import MemoryStatus
    from mirage_ros_interfaces.srv import MemoryFile, PredictViews

    rclpy.init()
    node = rclpy.create_node("mirage_demo")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    status: dict[str, Any] = {}
    node.create_subscription(
        MemoryStatus,
        "/mirage/status",
        lambda m: status.update(frames=m.frames_integrated, msg=m),
        10,
    )
    predict = node.create_client(PredictViews, "/mirage/predict_views")
    save = node.create_client(MemoryFile, "/mirage/save_memory")
    load = node.create_client(MemoryFile, "/mirage/load_memory")
    reset = node.create_client(Trigger, "/mirage/reset")
    traj = ActionClient(node, PredictTrajectory, "/mirage/predict_trajectory")
    try:
        deadline = time.monotonic() + 120
        while not predict.wait_for_service(timeout_sec=0.5):
            if node_proc.poll() is not None or time.monotonic() > deadline:
                raise MirageError(f"mirage_node did not start (see {out / 'node.log'})")
        print(
            "[demo] node is up; replaying the bag over DDS "
            f"(rate x{args.rate}, every {HOLDOUT_EVERY}th frame withheld)"
        )
        t0 = time.monotonic()
        counts = play(node, [bag_path], rate=args.rate, holdout_every=HOLDOUT_EVERY)
        n_integrable = args.frames - args.frames // HOLDOUT_EVERY
        last, last_change = -1, time.monotonic()
        while time.monotonic() - t0 < 600:  # until the node has integrated what it got
            st = status.get("msg")
            n = st.frames_integrated if st is not None else 0
            if n >= n_integrable:
                break
            if n != last:
                last, last_change = n, time.monotonic()
            elif st is not None and st.queue_length == 0 and time.monotonic() - last_change > 10:
                break
            time.sleep(0.2)
        replay_s = time.monotonic() - t0
        st = status.get("msg")
        print(
            f"[demo] replayed {counts['published']} messages in {replay_s:.1f} s; node "
            f"integrated {st.frames_integrated if st else 0} frames, "
            f"{st.voxels if st else 0} voxels, {st.memory_bytes / 1e6 if st else 0:.1f} MB"
        )

        def pose_msg(T: np.ndarray) -> PoseStamped:
            p = PoseStamped()
            p.header.frame_id = "map"
            conv.fill_pose_msg(p.pose, T)
            return p

        def info_msg(f: Any) -> CameraInfo:
            info = CameraInfo()
            conv.fill_camera_info_msg(info, f.K, f.rgb.shape[1], f.rgb.shape[0])
            info.header.frame_id = "camera_color_optical_frame"
            return info

        # 4a. Held-out frames (every 5th frame of the replayed part).
        held = [f for f in frames[: args.frames] if f.index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
        rows = []
        for f in held:
            req = PredictViews.Request(
                poses=[pose_msg(f.T_world_camera)],
                camera_info=info_msg(f),
                with_depth=True,
                with_confidence=True,
            )
            res = _wait(predict.call_async(req), 120, "predict_views")
            if not res.success:
                raise MirageError(f"predict_views failed: {res.message}")
            rgb, conf, depth = _view_arrays(res.views[0])
            covered = np.isfinite(depth)
            rows.append(
                {
                    "index": f.index,
                    "kind": "held_out",
                    "psnr": _psnr(rgb, f.rgb),
                    "psnr_covered": _psnr(rgb, f.rgb, covered),
                    "coverage": float(res.views[0].coverage_fraction),
                    "_arrays": (f.rgb, rgb, conf),
                }
            )
        # 4b. The path ahead, as a planner would preview it.
        ahead = frames[args.frames :]
        path = PathMsg()
        path.header.frame_id = "map"
        path.poses = [pose_msg(f.T_world_camera) for f in ahead]
        goal = PredictTrajectory.Goal(
            path=path, camera_info=info_msg(ahead[0]), with_depth=True, with_confidence=True
        )
        feedback: list[Any] = []
        traj.wait_for_server(timeout_sec=30)
        gh = _wait(
            traj.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback)),
            60,
            "predict_trajectory goal",
        )
        if not gh.accepted:
            raise MirageError("predict_trajectory goal rejected")
        result = _wait(gh.get_result_async(), 600, "predict_trajectory").result
        time.sleep(0.3)
        for fb in sorted(feedback, key=lambda x: x.index):
            f = ahead[fb.index]
            rgb, conf, depth = _view_arrays(fb.view)
            rows.append(
                {
                    "index": f.index,
                    "kind": "ahead",
                    "psnr": _psnr(rgb, f.rgb),
                    "psnr_covered": _psnr(rgb, f.rgb, np.isfinite(depth)),
                    "coverage": float(fb.view.coverage_fraction),
                    "_arrays": (f.rgb, rgb, conf),
                }
            )
        # 5. Save -> reset -> load -> the same prediction, bit for bit.
        probe = PredictViews.Request(
            poses=[pose_msg(held[len(held) // 2].T_world_camera)],
            camera_info=info_msg(held[0]),
            with_depth=True,
        )
        before = _wait(predict.call_async(probe), 120, "predict_views").views[0]
        saved = _wait(
            save.call_async(MemoryFile.Request(path="demo_memory.safetensors")), 120, "save_memory"
        )
        _wait(reset.call_async(Trigger.Request()), 60, "reset")
        empty = _wait(predict.call_async(probe), 120, "predict_views").views[0]
        loaded = _wait(
            load.call_async(MemoryFile.Request(path="demo_memory.safetensors")), 120, "load_memory"
        )
        after = _wait(predict.call_async(probe), 120, "predict_views").views[0]
        identical = bytes(before.image.data) == bytes(after.image.data) and bytes(
            before.depth.data
        ) == bytes(after.depth.data)
        print(
            f"[demo] save: {saved.message}; after reset coverage "
            f"{empty.coverage_fraction:.2f}; load: {loaded.message}; identical: {identical}"
        )
        _grid(out / "grid.png", rows)
        time.sleep(1.2)  # one more ~/status, with the prediction latencies
        return _metrics(rows, result, status.get("msg"), identical, replay_s, counts)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def _metrics(
    rows: list[dict[str, Any]],
    result: Any,
    st: Any,
    identical: bool,
    replay_s: float,
    counts: dict[str, int],
) -> dict[str, Any]:
    def agg(kind: str, key: str) -> float | None:
        vals = [r[key] for r in rows if r["kind"] == kind and r[key] is not None]
        return round(float(np.mean(vals)), 2) if vals else None

    return {
        "held_out": {
            "count": sum(r["kind"] == "held_out" for r in rows),
            "psnr": agg("held_out", "psnr"),
            "psnr_covered": agg("held_out", "psnr_covered"),
            "coverage": agg("held_out", "coverage"),
        },
        "ahead": {
            "count": sum(r["kind"] == "ahead" for r in rows),
            "psnr": agg("ahead", "psnr"),
            "psnr_covered": agg("ahead", "psnr_covered"),
            "coverage": agg("ahead", "coverage"),
            "trajectory_result": {
                "success": bool(result.success),
                "views": int(result.views_predicted),
            },
        },
        "node": {
            "frames_integrated": int(st.frames_integrated) if st else 0,
            "voxels": int(st.voxels) if st else 0,
            "memory_bytes": int(st.memory_bytes) if st else 0,
            "integrate_ms_p50": round(float(st.integrate_ms_p50), 2) if st else None,
            "predict_ms_p50": round(float(st.predict_ms_p50), 2) if st else None,
            "dropped_queue_full": int(st.dropped_queue_full) if st else 0,
        },
        "replay": {"seconds": round(replay_s, 1), **counts},
        "reload_identical": identical,
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    }


def _grid(path: Path, rows: list[dict[str, Any]]) -> None:
    """real | predicted | confidence | error for the worst, median and best of each kind."""
    from PIL import Image as PILImage

    picked = []
    for kind in ("held_out", "ahead"):
        ranked = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["psnr"] or 0.0)
        if ranked:
            picked += [ranked[0], ranked[len(ranked) // 2], ranked[-1]]
    tiles = []
    for r in picked:
        real, pred, conf = r["_arrays"]
        conf_img = np.repeat((np.clip(conf, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)
        err = np.abs(real.astype(np.int16) - pred.astype(np.int16)).mean(-1)
        err_img = np.repeat(np.clip(err * 4, 0, 255).astype(np.uint8)[..., None], 3, -1)
        tiles.append(np.concatenate([real, pred, conf_img, err_img], axis=1))
    if tiles:
        PILImage.fromarray(np.concatenate(tiles, axis=0)).save(path)


def _summary(m: dict[str, Any], out: Path) -> str:
    h, a, n = m["held_out"], m["ahead"], m["node"]
    return "\n".join(
        [
            "mirage demo — summary",
            f"  node integrated {n['frames_integrated']} frames over DDS "
            f"in {m['replay']['seconds']} s "
            f"(integrate p50 {n['integrate_ms_p50']} ms, predict p50 {n['predict_ms_p50']} ms)",
            f"  memory: {n['voxels']} voxels, {n['memory_bytes'] / 1e6:.2f} MB",
            f"  withheld frames ({h['count']}): PSNR {h['psnr']} dB all pixels, "
            f"{h['psnr_covered']} dB on covered pixels, coverage {h['coverage']}",
            f"  path ahead ({a['count']} views via ~/predict_trajectory): PSNR {a['psnr']} dB, "
            f"covered {a['psnr_covered']} dB, coverage {a['coverage']}",
            f"  save -> reset -> load -> identical prediction: {m['reload_identical']}",
            f"  outputs: {out}/grid.png (real | predicted | confidence | error), metrics.json, "
            f"node.log  [{m['wall_s']} s]",
        ]
    )
