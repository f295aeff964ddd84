"""The node's engine: bounded frame queue, one worker thread, pairing, rate limit, counters.

Ring 2 (no rclpy): the node's callbacks convert messages and hand plain arrays to
:meth:`Engine.submit_color` / :meth:`Engine.submit_depth` / :meth:`Engine.submit_camera_info`; the
single worker thread integrates frames whose camera info, depth and transform are available,
and runs every memory operation (predict, save, load, reset) so a request never sees a
half-updated memory. Callers wait on a :class:`concurrent.futures.Future`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from mirage_ros.core.errors import MirageError, RequestError, TransformError
from mirage_ros.node_config import NodeConfig
from mirage_ros.procutil import name_this_thread
from mirage_ros.transforms import TransformBuffer

__all__ = ["CameraState", "ColorFrame", "Engine", "EngineCounters"]

T = TypeVar("T")
_INFO_HISTORY = 64
_DEPTH_HISTORY = 64


@dataclass
class ColorFrame:
    """A converted color image waiting for its camera info, depth and transform."""

    camera: str
    stamp_ns: int
    frame_id: str
    rgb: np.ndarray  # (H, W, 3) uint8
    received_s: float  # time.monotonic() at arrival


@dataclass
class CameraState:
    """Recent camera infos and depth images of one camera (bounded)."""

    infos: collections.OrderedDict[int, tuple[np.ndarray, int, int]] = field(
        default_factory=collections.OrderedDict
    )
    depths: collections.deque[tuple[int, np.ndarray]] = field(
        default_factory=lambda: collections.deque(maxlen=_DEPTH_HISTORY)
    )
    last_integrated_stamp_ns: int | None = None
    last_K: np.ndarray | None = None
    last_size: tuple[int, int] | None = None  # (width, height)
    last_frame_id: str = ""


@dataclass
class EngineCounters:
    frames_received: int = 0
    frames_integrated: int = 0
    dropped_queue_full: int = 0
    dropped_no_transform: int = 0
    dropped_no_depth: int = 0
    dropped_no_camera_info: int = 0
    dropped_bad_input: int = 0
    dropped_rate_limit: int = 0
    predictions_served: int = 0
    requests_rejected: int = 0
    clock_jumps: int = 0


class Engine:
    """Owns the predictor (codec + memory) and the worker thread that uses it.

    Args:
        predictor: a ``core.predictor.Predictor`` (anything with ``observe``/``predict`` and a
            ``memory`` attribute).
        tf_buffer: the shared :class:`TransformBuffer` the node's /tf callbacks fill.
        config: node settings.
        log: called with (level, message) for the node to log (throttling is the node's job).
    """

    def __init__(
        self,
        predictor: Any,
        tf_buffer: TransformBuffer,
        config: NodeConfig,
        log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.tf = tf_buffer
        self.config = config
        self.counters = EngineCounters()
        self.cameras: dict[str, CameraState] = {
            ns: CameraState() for ns in config.camera_namespaces
        }
        self._log = log or (lambda level, msg: None)
        self._lock = threading.Lock()  # guards queues, camera states and counters
        self._wake = threading.Condition(self._lock)
        self._frames: collections.deque[ColorFrame] = collections.deque()
        self._jobs: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            collections.deque()
        )
        self._integrate_ms: collections.deque[float] = collections.deque(maxlen=200)
        self._predict_ms: collections.deque[float] = collections.deque(maxlen=200)
        self._newest_color_ns: dict[str, int] = {}
        self._memory_stats: dict[str, Any] = dict(predictor.memory.stats())
        self._running = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._worker, name="mirage_worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._wake:
            self._running = False
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            jobs = list(self._jobs)
            self._jobs.clear()
        for _, fut in jobs:
            fut.cancel()

    def update_config(self, config: NodeConfig) -> None:
        with self._lock:
            self.config = config

    # ------------------------------------------------------------------ inputs (any thread)
    def submit_camera_info(
        self, camera: str, stamp_ns: int, K: np.ndarray, width: int, height: int
    ) -> None:
        with self._lock:
            state = self.cameras[camera]
            state.infos[stamp_ns] = (K, width, height)
            while len(state.infos) > _INFO_HISTORY:
                state.infos.popitem(last=False)
            self._wake.notify_all()

    def submit_depth(self, camera: str, stamp_ns: int, depth_m: np.ndarray) -> None:
        with self._lock:
            self.cameras[camera].depths.append((stamp_ns, depth_m))
            self._wake.notify_all()

    def submit_color(self, camera: str, stamp_ns: int, frame_id: str, rgb: np.ndarray) -> None:
        """Queue a color frame (drop-oldest when full); rate limit by message stamps."""
        with self._lock:
            self.counters.frames_received += 1
            self._check_clock_jump(camera, stamp_ns)
            state = self.cameras[camera]
            rate = self.config.max_rate_hz
            last = state.last_integrated_stamp_ns
            if rate > 0 and last is not None and 0 <= stamp_ns - last < 1e9 / rate:
                self.counters.dropped_rate_limit += 1
                return
            if len(self._frames) >= self.config.queue_size:
                self._frames.popleft()
                self.counters.dropped_queue_full += 1
            self._frames.append(ColorFrame(camera, stamp_ns, frame_id, rgb, time.monotonic()))
            self._wake.notify_all()

    def count_bad_input(self) -> None:
        with self._lock:
            self.counters.dropped_bad_input += 1

    def count_rejected_request(self) -> None:
        with self._lock:
            self.counters.requests_rejected += 1

    def _check_clock_jump(self, camera: str, stamp_ns: int) -> None:
        """A camera's color stamps going back by more than a second (a looped bag) follow
        clock_jump_policy. Only one stream is compared with itself: callbacks of different
        topics may run late relative to each other on a loaded machine."""
        newest = self._newest_color_ns.get(camera, 0)
        if newest and stamp_ns < newest - 1_000_000_000:
            self.counters.clock_jumps += 1
            self._log(
                "warn",
                f"message time jumped back by {(newest - stamp_ns) / 1e9:.1f} s: "
                f"{self.config.clock_jump_policy}",
            )
            self.tf.clear()  # dynamic history only; static transforms stay
            self._frames.clear()
            for state in self.cameras.values():
                state.last_integrated_stamp_ns = None
            self._newest_color_ns.clear()
            if self.config.clock_jump_policy == "reset_memory":
                self._jobs.append((self.predictor.memory.reset, concurrent.futures.Future()))
        self._newest_color_ns[camera] = max(self._newest_color_ns.get(camera, 0), stamp_ns)

    # ------------------------------------------------------------------ worker jobs
    def submit_job(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the worker (after the job in progress); jobs go before frames."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._wake:
            if not self._running:
                fut.set_exception(RequestError("the memory worker is not running"))
                return fut
            self._jobs.append((fn, fut))
            self._wake.notify_all()
        return fut

    def call(self, fn: Callable[[], T], timeout_s: float | None = None) -> T:
        timeout = self.config.request_timeout_s if timeout_s is None else timeout_s
        fut = self.submit_job(fn)
        try:
            return fut.result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            fut.cancel()
            raise RequestError(f"the memory worker did not answer within {timeout:.1f} s") from exc

    def _worker(self) -> None:
        name_this_thread("mirage_worker")
        while True:
            with self._wake:
                while self._running and not self._jobs and not self._ready_frame_locked():
                    self._wake.wait(timeout=0.01)
                if not self._running:
                    return
                job = self._jobs.popleft() if self._jobs else None
                frame = None if job is not None else self._pop_ready_frame_locked()
            if job is not None:
                fn, fut = job
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as exc:  # delivered to the waiting caller
                        fut.set_exception(exc)
            elif frame is not None:
                self._integrate(*frame)
            else:
                continue
            stats = dict(self.predictor.memory.stats())  # consistent: taken on the worker
            with self._lock:
                self._memory_stats = stats

    def _ready_frame_locked(self) -> bool:
        """True when the head frame can be integrated or must be dropped (lock held)."""
        if not self._frames:
            return False
        return self._pairing_locked(self._frames[0]) is not None

    def _pairing_locked(self, frame: ColorFrame) -> tuple[str, Any] | None:
        state = self.cameras[frame.camera]
        timed_out = time.monotonic() - frame.received_s > self.config.transform_wait_s
        info = state.infos.get(frame.stamp_ns)
        if info is None:
            return ("drop", "no_camera_info") if timed_out else None
        slop_ns = int(self.config.depth_slop_s * 1e9)
        depth = None
        best = slop_ns + 1
        for stamp, d in state.depths:
            diff = abs(stamp - frame.stamp_ns)
            if diff < best:
                best, depth = diff, d
        if depth is None:
            return ("drop", "no_depth") if timed_out else None
        if not self.tf.can_transform(self.config.fixed_frame, frame.frame_id, frame.stamp_ns):
            return ("drop", "no_transform") if timed_out else None
        return ("ok", (info, depth))

    def _pop_ready_frame_locked(self) -> tuple[ColorFrame, Any] | None:
        frame = self._frames[0]
        pairing = self._pairing_locked(frame)
        if pairing is None:
            return None
        self._frames.popleft()
        kind, payload = pairing
        if kind == "drop":
            attr = f"dropped_{payload}"
            setattr(self.counters, attr, getattr(self.counters, attr) + 1)
            return None
        return frame, payload

    def _integrate(self, frame: ColorFrame, payload: Any) -> None:
        (K, width, height), depth_m = payload
        try:
            if frame.rgb.shape[:2] != (height, width):
                raise RequestError(
                    f"image {frame.rgb.shape[1]}x{frame.rgb.shape[0]} does not match camera_info "
                    f"{width}x{height}"
                )
            if depth_m.shape != frame.rgb.shape[:2]:
                raise RequestError(
                    f"depth {depth_m.shape[1]}x{depth_m.shape[0]} does not match color "
                    f"{frame.rgb.shape[1]}x{frame.rgb.shape[0]}"
                )
            T_world_camera = self.tf.lookup(self.config.fixed_frame, frame.frame_id, frame.stamp_ns)
            t0 = time.perf_counter()
            self.predictor.observe(frame.rgb, depth_m, K, T_world_camera, frame.stamp_ns)
            ms = (time.perf_counter() - t0) * 1e3
        except TransformError as exc:
            with self._lock:
                self.counters.dropped_no_transform += 1
            self._log("warn", f"frame dropped: {exc}")
            return
        except MirageError as exc:
            with self._lock:
                self.counters.dropped_bad_input += 1
            self._log("warn", f"frame dropped: {exc}")
            return
        with self._lock:
            self._integrate_ms.append(ms)
            self.counters.frames_integrated += 1
            state = self.cameras[frame.camera]
            state.last_integrated_stamp_ns = frame.stamp_ns
            state.last_K, state.last_size = K, (width, height)
            state.last_frame_id = frame.frame_id

    # ------------------------------------------------------------------ queries
    def record_predict_ms(self, ms: float, views: int) -> None:
        with self._lock:
            self._predict_ms.append(ms)
            self.counters.predictions_served += views

    def last_camera(self) -> tuple[np.ndarray, int, int, str] | None:
        """The newest integrated camera's (K, width, height, frame_id); None before any frame."""
        with self._lock:
            best: tuple[int, CameraState] | None = None
            for state in self.cameras.values():
                if state.last_K is not None and state.last_size is not None:
                    stamp = state.last_integrated_stamp_ns or 0
                    if best is None or stamp > best[0]:
                        best = (stamp, state)
            if best is None:
                return None
            state = best[1]
            assert state.last_K is not None and state.last_size is not None
            return state.last_K, state.last_size[0], state.last_size[1], state.last_frame_id

    def queue_length(self) -> int:
        with self._lock:
            return len(self._frames)

    def memory_stats(self) -> dict[str, Any]:
        """The memory's stats as of the worker's last operation (never waits for the worker)."""
        with self._lock:
            return dict(self._memory_stats)

    def snapshot(self) -> dict[str, Any]:
        """Counters and latencies (a consistent copy)."""
        with self._lock:
            out: dict[str, Any] = dataclasses.asdict(self.counters)
            out["queue_length"] = len(self._frames)
            out["integrate_ms_p50"] = _median(self._integrate_ms)
            out["predict_ms_p50"] = _median(self._predict_ms)
            return out


def _median(values: collections.deque[float]) -> float:
    return float(np.median(np.fromiter(values, dtype=np.float64))) if values else 0.0
