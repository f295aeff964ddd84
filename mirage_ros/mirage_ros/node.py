"""mirage_node: cameras + TF in, predicted views out (the only rclpy code, with params.py).

Threading (see DESIGN.md): subscription callbacks only convert and enqueue into the
:class:`~mirage_ros.engine.Engine`; its single worker integrates frames and runs every memory
operation; service/action callbacks (a reentrant group, run by a thread pool) wait on the
worker's futures. The node never blocks on TF: frames wait in the engine until their transform
exists (or are dropped and counted after ``transform_wait_s``).

The sensor subscriptions (camera images, camera infos, /tf, /tf_static) live on a companion
node, ``<name>_sensors`` in the same namespace, spun by a single-threaded executor on a thread
of its own: their callbacks (convert + enqueue, never blocking) run there, and its wait set
holds those few subscriptions alone. On the main node's executor every wake-up rebuilds a wait
set of ~50 entities (publishers and their QoS-event handlers, services, parameter services, the
action server, timers) in Python, 0.7 ms each; at 30 Hz RGB-D + 100 Hz /tf that was the spin
thread's largest cost, all of it holding the GIL the worker needs. The companion gets the
process's topic remaps (``node_config.sensor_node_remaps``), not its node-name rules.

The main executor (:class:`PoolExecutor`) runs every other callback in a thread pool, waiting
after each hand-off until the pool thread has started it: rclpy's MultiThreadedExecutor, under
the soak load (30 Hz RGB-D + 100 Hz /tf on 2 cores), handed ~220 callbacks/s to pool threads,
each hand-off waiting for the GIL, and while a task waited for a pool thread its spin loop
re-submitted it in a tight loop, holding the GIL. At most ``max_concurrent_requests`` requests
wait on the worker at once and the pool has four threads more than that, so timers always find
a thread; a request over the limit gets an immediate "busy" answer.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    ShutdownException,
    SingleThreadedExecutor,
    TimeoutException,
)
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from mirage_ros import conversions as conv
from mirage_ros import params
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ConfigError, MirageError, RequestError
from mirage_ros.dds import use_large_image_profile
from mirage_ros.engine import Engine
from mirage_ros.node_config import sensor_node_remaps
from mirage_ros.procutil import name_this_thread
from mirage_ros.transforms import TransformBuffer
from mirage_ros.view_requests import RequestResolver, ViewRequest, confine_path
from mirage_ros_interfaces.action import PredictTrajectory
from mirage_ros_interfaces.msg import MemoryStatus, PredictedView
from mirage_ros_interfaces.srv import MemoryFile, PredictViews

__all__ = ["MirageNode", "PoolExecutor", "main"]

_START_WAIT_S = 0.05  # how long spin waits for a pool thread to pick a callback up

_LATCHED = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
_TF_STATIC = QoSProfile(
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
_TF = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_RELIABLE_SENSOR = QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE)


class MirageNode(Node):
    """The latent spatial memory as a ROS 2 node."""

    def __init__(self, ros_args: list[str] | None = None, **kwargs: Any) -> None:
        """``ros_args``: the command line given to ``rclpy.init`` (for the remaps the sensor
        node needs; None = ``sys.argv``)."""
        super().__init__("mirage", **kwargs)
        params.declare_parameters(self)
        self.config, memory_kwargs = params.read_configs(self)
        sys.setswitchinterval(self.config.gil_switch_interval_ms / 1e3)  # the whole process
        self.predictor = _build_predictor(self.config, memory_kwargs)
        self.tf_buffer = TransformBuffer(cache_time_s=30.0)
        self.engine = Engine(self.predictor, self.tf_buffer, self.config, log=self._log)
        self.resolver = RequestResolver(self.tf_buffer, self.engine)
        self._memory_dir = Path(os.path.expanduser(self.config.memory_dir))
        self._last_log: dict[str, float] = {}
        # the sensor subscriptions live on a companion node with an executor of its own: see
        # the module docstring
        self.sensor_node = Node(
            f"{self.get_name()}_sensors",
            namespace=self.get_namespace(),
            context=self.context,
            cli_args=_remap_args(sensor_node_remaps(_ros_args(ros_args), self.get_name())),
            use_global_arguments=False,
            start_parameter_services=False,
            enable_rosout=False,  # it logs through this node
        )
        self._sensor_executor = SingleThreadedExecutor(context=self.context)
        self._sensor_thread: threading.Thread | None = None
        self._request_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._request_slots = threading.BoundedSemaphore(self.config.max_concurrent_requests)

        self.engine.start()
        if self.config.load_path:
            self._load_at_start(self.config.load_path)
        self._create_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._sensor_executor.add_node(self.sensor_node)
        self._sensor_thread = threading.Thread(
            target=self._spin_sensors, name="mirage_sensors", daemon=True
        )
        self._sensor_thread.start()
        mem = self.predictor.memory
        self.get_logger().info(
            f"mirage ready: device={mem.device} codec={self.predictor.codec.codec_id} "
            f"fixed_frame={self.config.fixed_frame} cameras={list(self.config.camera_namespaces)} "
            f"budget={mem.config.max_memory_mb} MB"
        )

    # ------------------------------------------------------------------ set-up
    def _create_interfaces(self) -> None:
        cfg = self.config
        sensor_qos = (
            qos_profile_sensor_data if cfg.sensor_qos == "sensor_data" else _RELIABLE_SENSOR
        )
        for ns in cfg.camera_namespaces:
            base = ns.rstrip("/")
            if base.startswith("~"):  # private to this node, not to its sensor companion
                base = self.get_fully_qualified_name() + base[1:]
            self.sensor_node.create_subscription(
                Image,
                f"{base}/color/image_raw",
                lambda m, ns=ns: self._on_color(ns, m),
                sensor_qos,
            )
            self.sensor_node.create_subscription(
                CameraInfo,
                f"{base}/color/camera_info",
                lambda m, ns=ns: self._on_info(ns, m),
                sensor_qos,
            )
            self.sensor_node.create_subscription(
                Image,
                f"{base}/depth/image_raw",
                lambda m, ns=ns: self._on_depth(ns, m),
                sensor_qos,
            )
        self.sensor_node.create_subscription(
            TFMessage,
            "/tf",
            lambda m: self._on_tf(m, False),
            _TF,
        )
        self.sensor_node.create_subscription(
            TFMessage,
            "/tf_static",
            lambda m: self._on_tf(m, True),
            _TF_STATIC,
        )
        self.create_subscription(
            PoseStamped,
            "~/query_pose",
            self._on_query_pose,
            _RELIABLE,
            callback_group=self._request_group,
        )
        self.pub_image = self.create_publisher(Image, "~/predicted/image", _RELIABLE)
        self.pub_info = self.create_publisher(CameraInfo, "~/predicted/camera_info", _RELIABLE)
        self.pub_conf = self.create_publisher(Image, "~/predicted/confidence", _RELIABLE)
        self.pub_depth = self.create_publisher(Image, "~/predicted/depth", _RELIABLE)
        self.pub_status = self.create_publisher(MemoryStatus, "~/status", _RELIABLE)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", _RELIABLE)
        self.pub_cloud = self.create_publisher(PointCloud2, "~/memory_cloud", _LATCHED)

        self.create_service(
            PredictViews, "~/predict_views", self._srv_predict, callback_group=self._request_group
        )
        self.create_service(
            MemoryFile, "~/save_memory", self._srv_save, callback_group=self._request_group
        )
        self.create_service(
            MemoryFile, "~/load_memory", self._srv_load, callback_group=self._request_group
        )
        self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=self._request_group)
        self._action = ActionServer(
            self,
            PredictTrajectory,
            "~/predict_trajectory",
            self._execute_trajectory,
            goal_callback=self._on_goal,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=self._request_group,
        )
        # Status, clouds and autosave are wall-clock duties: a steady clock keeps them running
        # when use_sim_time is set and /clock pauses or jumps (bag replay).
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(
            1.0 / cfg.status_rate_hz, self._publish_status, self._timer_group, clock=steady
        )
        self.create_timer(1.0, self._maybe_publish_cloud, self._timer_group, clock=steady)
        self._last_cloud_s = 0.0
        self._last_autosave_s = time.monotonic()
        if cfg.autosave_path and cfg.autosave_period_min > 0:
            self.create_timer(
                cfg.autosave_period_min * 60.0, self._autosave, self._timer_group, clock=steady
            )

    def _on_set_parameters(self, changed: list[Any]) -> Any:
        result, new_config = params.validate_live_change(self.config, changed)
        if result.successful:
            self.config = new_config
            self.engine.update_config(new_config)
        return result

    def _log(self, level: str, message: str, throttle_s: float = 5.0) -> None:
        """Log with a per-message-kind throttle (callbacks may fail at camera rate)."""
        key = level + message.split(":", 1)[0]
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) < throttle_s:
            return
        self._last_log[key] = now
        logger = self.get_logger()
        {"info": logger.info, "warn": logger.warning, "error": logger.error}.get(
            level, logger.warning
        )(message)

    # ------------------------------------------------------------------ sensor callbacks
    def _on_color(self, ns: str, msg: Image) -> None:
        try:
            rgb = conv.image_from_msg(msg)
            stamp_ns = conv.stamp_ns_from_msg(msg.header.stamp)
            if not msg.header.frame_id:
                raise MirageError("image header.frame_id is empty")
        except MirageError as exc:
            self.engine.count_bad_input()
            self._log("warn", f"{ns} color image dropped: {exc}")
            return
        self.engine.submit_color(ns, stamp_ns, msg.header.frame_id, rgb)

    def _on_depth(self, ns: str, msg: Image) -> None:
        try:
            depth = conv.depth_from_msg(msg)
            stamp_ns = conv.stamp_ns_from_msg(msg.header.stamp)
        except MirageError as exc:
            self.engine.count_bad_input()
            self._log("warn", f"{ns} depth image dropped: {exc}")
            return
        self.engine.submit_depth(ns, stamp_ns, depth)

    def _on_info(self, ns: str, msg: CameraInfo) -> None:
        try:
            K, width, height = conv.intrinsics_from_camera_info(msg)
            stamp_ns = conv.stamp_ns_from_msg(msg.header.stamp)
        except MirageError as exc:
            self.engine.count_bad_input()
            self._log("warn", f"{ns} camera_info dropped: {exc}")
            return
        self.engine.submit_camera_info(ns, stamp_ns, K, width, height)

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        _accepted, rejected = self.tf_buffer.add_tf_message(msg, static=static)
        if rejected:
            self._log("warn", f"tf: {rejected} invalid transform(s) ignored")

    @contextlib.contextmanager
    def _request_slot(self) -> Iterator[None]:
        """Hold one of ``max_concurrent_requests`` slots, or raise a busy RequestError."""
        if not self._request_slots.acquire(blocking=False):
            raise RequestError(
                f"busy: {self.config.max_concurrent_requests} requests are already in flight "
                "(max_concurrent_requests); retry shortly"
            )
        try:
            yield
        finally:
            self._request_slots.release()

    # ------------------------------------------------------------------ predictions
    def _predict(self, request: ViewRequest) -> list[PredictedView]:
        """Resolve, render+decode on the worker, and build messages (raises MirageError)."""
        resolved = self.resolver.resolve(request, self.config)
        t0 = time.perf_counter()
        result = self.engine.call(lambda: self.resolver.render(resolved, self.config.predict_batch))
        self.engine.record_predict_ms((time.perf_counter() - t0) * 1e3, len(resolved.poses))
        return [self._view_msg(resolved, result, i) for i in range(len(resolved.poses))]

    def _view_msg(self, resolved: Any, result: Any, i: int) -> PredictedView:
        view = PredictedView()
        K, width, height = resolved.camera
        for header in (view.header, view.camera_info.header, view.image.header):
            conv.fill_stamp(header.stamp, resolved.stamp_ns)
            header.frame_id = resolved.camera_frame
        conv.fill_camera_info_msg(view.camera_info, K, width, height)
        view.pose.header.frame_id = self.config.fixed_frame
        conv.fill_stamp(view.pose.header.stamp, resolved.stamp_ns)
        conv.fill_pose_msg(view.pose.pose, resolved.poses[i])
        conv.fill_image_msg(view.image, result.rgb_u8[i], "rgb8")
        if resolved.with_confidence:
            view.confidence.header = view.image.header
            conv.fill_depth_msg(view.confidence, result.confidence[i], "32FC1")
        if resolved.with_depth:
            view.depth.header = view.image.header
            conv.fill_depth_msg(view.depth, result.depth_m[i], "32FC1")
        view.coverage_fraction = float(result.coverage_fraction[i])
        return view

    def _srv_predict(self, request: PredictViews.Request, response: Any) -> Any:
        try:
            with self._request_slot():
                response.views = self._predict(ViewRequest.from_msg(request))
            response.success = True
            response.message = f"predicted {len(response.views)} view(s)"
        except MirageError as exc:
            self.engine.count_rejected_request()
            response.success, response.message, response.views = False, str(exc), []
        return response

    def _on_query_pose(self, msg: PoseStamped) -> None:
        try:
            with self._request_slot():
                request = ViewRequest(poses=[msg], with_depth=True, with_confidence=True)
                view = self._predict(request)[0]
        except MirageError as exc:
            self.engine.count_rejected_request()
            self._log("warn", f"query_pose rejected: {exc}")
            return
        self.pub_image.publish(view.image)
        self.pub_info.publish(view.camera_info)
        self.pub_conf.publish(view.confidence)
        self.pub_depth.publish(view.depth)

    def _on_goal(self, goal: PredictTrajectory.Goal) -> GoalResponse:
        n = len(goal.path.poses)
        if n == 0 or n > self.config.max_poses_per_request:
            self.engine.count_rejected_request()
            self._log(
                "warn",
                f"trajectory goal rejected: {n} poses "
                f"(allowed 1..{self.config.max_poses_per_request})",
            )
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute_trajectory(self, goal_handle: Any) -> Any:
        try:
            with self._request_slot():
                return self._run_trajectory(goal_handle)
        except RequestError as exc:  # busy
            self.engine.count_rejected_request()
            goal_handle.abort()
            result = PredictTrajectory.Result(views_requested=len(goal_handle.request.path.poses))
            result.success, result.message = False, str(exc)
            return result

    def _run_trajectory(self, goal_handle: Any) -> Any:
        goal = goal_handle.request
        result = PredictTrajectory.Result()
        poses = list(goal.path.poses)
        result.views_requested = len(poses)
        for pose in poses:  # poses with an empty frame take the path's frame
            if not pose.header.frame_id:
                pose.header.frame_id = goal.path.header.frame_id
        for index, pose in enumerate(poses):
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                result.success, result.message = False, f"canceled after {index} view(s)"
                return result
            try:
                view = self._predict(
                    ViewRequest(
                        poses=[pose],
                        body_frame=goal.body_frame,
                        camera_info=goal.camera_info,
                        with_depth=goal.with_depth,
                        with_confidence=goal.with_confidence,
                    )
                )[0]
            except MirageError as exc:
                self.engine.count_rejected_request()
                goal_handle.abort()
                result.success = False
                result.message = f"pose {index}: {exc}"
                return result
            feedback = PredictTrajectory.Feedback(view=view, index=index, total=len(poses))
            goal_handle.publish_feedback(feedback)
            result.views_predicted = index + 1
        goal_handle.succeed()
        result.success, result.message = True, f"predicted {result.views_predicted} view(s)"
        return result

    # ------------------------------------------------------------------ memory files
    def _file_op(self, kind: str, path_str: str) -> tuple[bool, str]:
        try:
            path = confine_path(path_str, self._memory_dir, self.config.allow_any_path)
            mem = self.predictor.memory
            if kind == "save":
                path.parent.mkdir(parents=True, exist_ok=True)
                self.engine.call(lambda: mem.save(path))
                return True, f"saved {mem.num_voxels} voxels to {path}"
            self.engine.call(
                lambda: mem.load(path, expected_codec_id=self.predictor.codec.codec_id)
            )
            return True, f"loaded {mem.num_voxels} voxels from {path}"
        except (MirageError, OSError) as exc:
            return False, f"{kind} failed: {exc}"

    def _file_request(self, kind: str, path_str: str) -> tuple[bool, str]:
        """A save/load service call: a request slot, then :meth:`_file_op` (which autosave and
        load_path use without a slot)."""
        try:
            with self._request_slot():
                return self._file_op(kind, path_str)
        except RequestError as exc:
            return False, str(exc)

    def _srv_save(self, request: MemoryFile.Request, response: Any) -> Any:
        response.success, response.message = self._file_request("save", request.path)
        return response

    def _srv_load(self, request: MemoryFile.Request, response: Any) -> Any:
        response.success, response.message = self._file_request("load", request.path)
        return response

    def _srv_reset(self, _request: Trigger.Request, response: Any) -> Any:
        try:
            with self._request_slot():
                self.engine.call(self.predictor.memory.reset)
            response.success, response.message = True, "memory cleared"
        except MirageError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _load_at_start(self, path_str: str) -> None:
        ok, message = self._file_op("load", path_str)
        (self.get_logger().info if ok else self.get_logger().error)(f"load_path: {message}")

    def _autosave(self) -> None:
        ok, message = self._file_op("save", self.config.autosave_path)
        self._log("info" if ok else "error", f"autosave: {message}", throttle_s=0.0)

    def save_on_shutdown(self) -> None:
        if self.config.autosave_path:
            self._autosave()

    # ------------------------------------------------------------------ status
    def _publish_status(self) -> None:
        mem = self.predictor.memory
        stats = self.engine.memory_stats()
        snap = self.engine.snapshot()
        msg = MemoryStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.config.fixed_frame
        msg.device = str(mem.device)
        msg.codec_id = self.predictor.codec.codec_id
        msg.voxels = int(stats.get("voxels", 0))
        msg.memory_bytes = int(stats.get("bytes", 0))
        msg.budget_bytes = int(stats.get("budget_bytes", 0))
        msg.voxels_evicted = int(stats.get("evicted_total", 0))
        msg.voxels_carved = int(stats.get("carved_total", 0))
        msg.frames_received = snap["frames_received"]
        msg.frames_integrated = snap["frames_integrated"]
        msg.dropped_queue_full = snap["dropped_queue_full"]
        msg.dropped_no_transform = (
            snap["dropped_no_transform"] + snap["dropped_no_depth"] + snap["dropped_no_camera_info"]
        )
        msg.dropped_bad_input = snap["dropped_bad_input"]
        msg.dropped_rate_limit = snap["dropped_rate_limit"]
        msg.queue_length = snap["queue_length"]
        msg.integrate_ms_p50 = snap["integrate_ms_p50"]
        msg.predict_ms_p50 = snap["predict_ms_p50"]
        msg.predictions_served = snap["predictions_served"]
        msg.requests_rejected = snap["requests_rejected"]
        msg.device_memory_bytes = _device_memory_bytes(mem.device)
        self.pub_status.publish(msg)
        self.pub_diag.publish(self._diagnostics(msg, snap))

    def _diagnostics(self, status: MemoryStatus, snap: dict[str, Any]) -> DiagnosticArray:
        d = DiagnosticStatus(name="mirage: latent spatial memory", hardware_id=status.device)
        full = status.budget_bytes and status.memory_bytes >= 0.98 * status.budget_bytes
        if status.frames_integrated == 0 and status.frames_received > 0:
            d.level, d.message = DiagnosticStatus.WARN, "receiving frames but integrating none"
        elif full:
            d.level, d.message = DiagnosticStatus.OK, "memory at budget (evicting)"
        else:
            d.level, d.message = DiagnosticStatus.OK, "ok"
        d.values = [KeyValue(key=k, value=str(v)) for k, v in sorted(snap.items())]
        d.values += [
            KeyValue(key="voxels", value=str(status.voxels)),
            KeyValue(key="memory_bytes", value=str(status.memory_bytes)),
            KeyValue(key="budget_bytes", value=str(status.budget_bytes)),
        ]
        arr = DiagnosticArray(status=[d])
        arr.header.stamp = status.header.stamp
        return arr

    def _maybe_publish_cloud(self) -> None:
        period = self.config.cloud_period_s
        if period <= 0 or time.monotonic() - self._last_cloud_s < period:
            return
        self._last_cloud_s = time.monotonic()
        if self.pub_cloud.get_subscription_count() == 0:
            return
        limit = self.config.cloud_max_points
        try:
            xyz, rgb = self.engine.call(lambda: self.resolver.colored_points(limit), timeout_s=30)
        except MirageError as exc:
            self._log("warn", f"memory_cloud skipped: {exc}")
            return
        msg = PointCloud2()
        msg.header.frame_id = self.config.fixed_frame
        msg.header.stamp = self.get_clock().now().to_msg()
        conv.fill_point_cloud2_msg(msg, xyz, rgb, PointField)
        self.pub_cloud.publish(msg)

    def _spin_sensors(self) -> None:
        """The sensor executor's thread: convert + enqueue, until the node is destroyed. A
        callback's unexpected error is logged and the thread goes on (the node stays up)."""
        name_this_thread("mirage_sensors")
        while self.context.ok() and self._sensor_thread is not None:
            try:
                self._sensor_executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, ShutdownException):
                return
            except Exception as exc:  # never lose the sensor thread
                self._log("error", f"sensor callback failed: {type(exc).__name__}: {exc}")

    def destroy_node(self) -> None:
        thread = getattr(self, "_sensor_thread", None)  # absent when the constructor failed
        if thread is not None:
            self._sensor_thread = None
            self._sensor_executor.shutdown(timeout_sec=1.0)
            thread.join(timeout=2.0)
        sensor_node = getattr(self, "sensor_node", None)
        if sensor_node is not None:
            sensor_node.destroy_node()
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.stop()
        super().destroy_node()


class PoolExecutor(Executor):
    """Runs callbacks in a thread pool, like rclpy's MultiThreadedExecutor but without its busy
    loop: each spin waits (briefly) until the callback it handed to the pool has started.

    Uses only the Executor API shared by Humble, Jazzy and Kilted.
    """

    def __init__(self, num_threads: int, *, context: Any = None) -> None:
        super().__init__(context=context)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max(2, num_threads),
            thread_name_prefix="mirage_callback",
            initializer=name_this_thread,
            initargs=("mirage_callback",),
        )
        self._handlers: list[Any] = []

    def spin_once(self, timeout_sec: float | None = None) -> None:
        try:
            handler, _entity, _node = self.wait_for_ready_callbacks(timeout_sec=timeout_sec)
        except (ExternalShutdownException, ShutdownException, TimeoutException):
            return
        started = threading.Event()

        def run() -> None:
            started.set()
            handler()

        self._pool.submit(run)
        self._handlers.append(handler)
        started.wait(_START_WAIT_S)  # releases the GIL so the pool thread can take it
        for done in [h for h in self._handlers if h.done()]:
            self._handlers.remove(done)
            done.result()  # a callback's exception surfaces here, as in rclpy's executors

    def _spin_once_until_future_complete(self, future: Any, timeout_sec: Any = None) -> None:
        self.spin_once(timeout_sec if isinstance(timeout_sec, (int, float)) else None)

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        ok = bool(super().shutdown(timeout_sec))
        self._pool.shutdown(wait=False, cancel_futures=True)
        return ok


def _ros_args(args: list[str] | None) -> list[str]:
    """The command line rclpy.init read its ROS arguments from."""
    return list(sys.argv if args is None else args)


def _remap_args(rules: list[str]) -> list[str] | None:
    """``cli_args`` for a node that gets only these remap rules."""
    if not rules:
        return None
    return ["--ros-args", *(x for rule in rules for x in ("-r", rule))]


def _device_memory_bytes(device: Any) -> int:
    """What torch's CUDA allocator holds on ``device`` (0 for a CPU memory)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return 0
    return int(torch.cuda.memory_reserved(device))


def _build_predictor(config: Any, memory_kwargs: dict[str, Any]) -> Any:
    import torch

    from mirage_ros.core.codec import load_codec
    from mirage_ros.core.memory import LatentSpatialMemory
    from mirage_ros.core.predictor import Predictor

    # Torch's CPU threads spin after each op; with one per core they starve the executor's
    # callbacks and the worker's own Python. Half the cores leaves room for both.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(config.torch_threads or max(1, (cores or 2) // 2))
    codec = load_codec(config.weights_path or None, device=config.device)
    memory_config = MemoryConfig(
        **memory_kwargs, latent_channels=codec.config.latent_channels, device=config.device
    )
    memory = LatentSpatialMemory(memory_config, codec_id=codec.codec_id)
    return Predictor(codec, memory, cuda_graphs=config.cuda_graphs)


def main(args: list[str] | None = None) -> int:
    use_large_image_profile()  # before the participant exists; a user's own profile wins
    rclpy.init(args=args)
    try:
        node = MirageNode(ros_args=args)
    except (ConfigError, MirageError) as exc:
        print(f"mirage_node: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    # Never fewer free threads than sensors and timers need: see the module docstring.
    executor = PoolExecutor(num_threads=node.config.max_concurrent_requests + 4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.save_on_shutdown()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
