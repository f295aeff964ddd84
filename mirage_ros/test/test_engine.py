"""The node's engine without ROS: queueing, pairing, rate limits, drops, clock jumps, jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from mirage_ros.core.codec import Codec, CodecConfig
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import RequestError
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.predictor import Predictor
from mirage_ros.engine import Engine
from mirage_ros.node_config import NodeConfig
from mirage_ros.transforms import TransformBuffer

H, W = 24, 32
K = np.array([[30.0, 0, W / 2 - 0.5], [0, 30.0, H / 2 - 0.5], [0, 0, 1]])
CAM = "camera"


def _predictor() -> Predictor:
    codec = Codec(
        CodecConfig(latent_channels=4, encoder_width=8, width=8, inner_width=8, head_channels=4)
    )
    memory = LatentSpatialMemory(MemoryConfig(latent_channels=4, device="cpu", voxel_size_m=0.1))
    return Predictor(codec, memory)


@pytest.fixture
def engine_factory() -> Iterator:
    engines: list[Engine] = []

    def make(**overrides: object) -> Engine:
        cfg = NodeConfig(**{"transform_wait_s": 0.3, "device": "cpu", **overrides})  # type: ignore[arg-type]
        tf = TransformBuffer()
        tf.set_transform("map", "camera_optical", np.eye(4), 0, static=True)
        engine = Engine(_predictor(), tf, cfg)
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.stop()


def _frame(engine: Engine, stamp_ns: int, depth: bool = True, info: bool = True) -> None:
    rgb = np.full((H, W, 3), 128, np.uint8)
    if info:
        engine.submit_camera_info(CAM, stamp_ns, K, W, H)
    if depth:
        engine.submit_depth(CAM, stamp_ns, np.full((H, W), 2.0, np.float32))
    engine.submit_color(CAM, stamp_ns, "camera_optical", rgb)


def _wait_for(cond, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def test_complete_frames_are_integrated_and_counted(engine_factory) -> None:
    engine = engine_factory()
    engine.start()
    for i in range(3):
        _frame(engine, 1_000_000_000 + i * 100_000_000)
    _wait_for(lambda: engine.snapshot()["frames_integrated"] == 3)
    assert engine.predictor.memory.num_voxels > 0
    assert engine.last_camera()[1:] == (W, H, "camera_optical")


def test_full_queue_drops_the_oldest_and_counts_it(engine_factory) -> None:
    engine = engine_factory(queue_size=2)  # not started: nothing is consumed
    for i in range(5):
        _frame(engine, 1_000_000_000 + i * 100_000_000)
    snap = engine.snapshot()
    assert snap["queue_length"] == 2
    assert snap["dropped_queue_full"] == 3
    assert [f.stamp_ns for f in engine._frames] == [1_300_000_000, 1_400_000_000]


def test_rate_limit_uses_message_stamps(engine_factory) -> None:
    engine = engine_factory(max_rate_hz=2.0)
    engine.start()
    _frame(engine, 1_000_000_000)
    _wait_for(lambda: engine.snapshot()["frames_integrated"] == 1)
    _frame(engine, 1_100_000_000)  # 0.1 s later by stamp: over 2 Hz
    _frame(engine, 1_600_000_000)  # 0.6 s later: allowed
    _wait_for(lambda: engine.snapshot()["frames_integrated"] == 2)
    assert engine.snapshot()["dropped_rate_limit"] == 1


def test_frame_without_depth_is_dropped_after_the_wait(engine_factory) -> None:
    engine = engine_factory(transform_wait_s=0.05)
    engine.start()
    _frame(engine, 1_000_000_000, depth=False)
    _wait_for(lambda: engine.snapshot()["dropped_no_depth"] == 1)
    assert engine.predictor.memory.num_voxels == 0


def test_depth_is_paired_within_the_slop_only(engine_factory) -> None:
    engine = engine_factory(depth_slop_s=0.01, transform_wait_s=0.05)
    engine.start()
    stamp = 2_000_000_000
    engine.submit_camera_info(CAM, stamp, K, W, H)
    engine.submit_depth(CAM, stamp + 50_000_000, np.full((H, W), 2.0, np.float32))  # 50 ms off
    engine.submit_color(CAM, stamp, "camera_optical", np.zeros((H, W, 3), np.uint8))
    _wait_for(lambda: engine.snapshot()["dropped_no_depth"] == 1)
    engine.submit_camera_info(CAM, stamp + 1, K, W, H)
    engine.submit_depth(CAM, stamp + 5_000_001, np.full((H, W), 2.0, np.float32))  # 5 ms off
    engine.submit_color(CAM, stamp + 1, "camera_optical", np.zeros((H, W, 3), np.uint8))
    _wait_for(lambda: engine.snapshot()["frames_integrated"] == 1)


def test_frame_waits_for_a_late_transform(engine_factory) -> None:
    engine = engine_factory(transform_wait_s=2.0)
    engine.start()
    rgb = np.zeros((H, W, 3), np.uint8)
    engine.submit_camera_info(CAM, 5, K, W, H)
    engine.submit_depth(CAM, 5, np.full((H, W), 2.0, np.float32))
    engine.submit_color(CAM, 5, "late_frame", rgb)
    time.sleep(0.1)
    assert engine.snapshot()["frames_integrated"] == 0
    engine.tf.set_transform("map", "late_frame", np.eye(4), 0, static=True)
    _wait_for(lambda: engine.snapshot()["frames_integrated"] == 1)


def test_size_mismatch_is_a_counted_bad_input_and_memory_is_unchanged(engine_factory) -> None:
    engine = engine_factory()
    engine.start()
    engine.submit_camera_info(CAM, 7, K, W + 2, H)
    engine.submit_depth(CAM, 7, np.full((H, W), 2.0, np.float32))
    engine.submit_color(CAM, 7, "camera_optical", np.zeros((H, W, 3), np.uint8))
    _wait_for(lambda: engine.snapshot()["dropped_bad_input"] == 1)
    assert engine.predictor.memory.num_voxels == 0


def test_clock_jump_back_clears_transforms_and_keeps_memory(engine_factory) -> None:
    engine = engine_factory()
    engine.start()
    engine.tf.set_transform("map", "odom", np.eye(4), 10_000_000_000, static=False)
    _frame(engine, 10_000_000_000)
    _wait_for(lambda: engine.snapshot()["frames_integrated"] == 1)
    voxels = engine.predictor.memory.num_voxels
    _frame(engine, 1_000_000_000)  # 9 s back: a looped bag
    _wait_for(lambda: engine.snapshot()["frames_integrated"] == 2)
    assert engine.snapshot()["clock_jumps"] == 1
    assert "odom" not in engine.tf.frames()
    assert engine.predictor.memory.num_voxels >= voxels


def test_jobs_run_on_the_worker_one_at_a_time(engine_factory) -> None:
    engine = engine_factory()
    engine.start()
    active = []
    overlaps = []

    def job() -> int:
        active.append(1)
        overlaps.append(len(active))
        time.sleep(0.01)
        active.pop()
        return threading.get_ident()

    futures = [engine.submit_job(job) for _ in range(8)]
    idents = {f.result(timeout=5) for f in futures}
    assert max(overlaps) == 1
    assert idents == {engine._thread.ident}


def test_job_errors_reach_the_caller_and_the_worker_survives(engine_factory) -> None:
    engine = engine_factory()
    engine.start()

    def bad() -> None:
        raise RequestError("nope")

    with pytest.raises(RequestError, match="nope"):
        engine.call(bad)
    assert engine.call(lambda: 42) == 42


def test_call_on_a_stopped_engine_fails_clearly(engine_factory) -> None:
    engine = engine_factory()
    with pytest.raises(RequestError, match="not running"):
        engine.call(lambda: 1)
