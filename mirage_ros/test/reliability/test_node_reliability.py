"""A live node under concurrent clients, abrupt stops and time jumps."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mirage_ros.sim import SceneConfig, SyntheticSequence
from rosutil import Client, start_node, stop_node, wait_future, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H = 64, 48


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    return list(SyntheticSequence(SceneConfig(seed=6, frames=10, width=W, height=H)))


@pytest.fixture(scope="module")
def client() -> Any:
    c = Client("mirage_reliability_client")
    yield c
    c.close()


def _request(frame: Any) -> Any:
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo

    from mirage_ros import conversions as conv
    from mirage_ros_interfaces.srv import PredictViews

    p = PoseStamped()
    p.header.frame_id = "map"
    conv.fill_pose_msg(p.pose, frame.T_world_camera)
    info = CameraInfo()
    conv.fill_camera_info_msg(info, frame.K, W, H)
    return PredictViews.Request(poses=[p], camera_info=info, with_depth=True)


@contextlib.contextmanager
def _live_node(
    tmp_path: Path, client: Client, frames: list[Any], *params: str
) -> Iterator[tuple[Any, Any, Any]]:
    """A node in its own process with ``frames`` integrated: (process, predict_views client,
    settled status). It must stop cleanly afterwards."""
    from mirage_ros_interfaces.srv import PredictViews

    proc = start_node(tmp_path, *params)
    client.attach(proc)
    try:
        predict = client.client(PredictViews, "predict_views")
        client.publish_frames(frames)
        yield proc, predict, client.wait_settled(len(frames))
    finally:
        assert stop_node(proc) == 0


def test_concurrent_predictions_during_loads_and_resets_see_whole_memories(
    tmp_path: Path, client: Client, frames: list[Any]
) -> None:
    """Every answer equals the prediction from the loaded memory or from the empty one."""
    from std_srvs.srv import Trigger

    from mirage_ros_interfaces.srv import MemoryFile, PredictViews

    with _live_node(tmp_path, client, frames) as (_proc, predict, _status):
        req = _request(frames[4])
        full = bytes(client.call(predict, req).views[0].image.data)
        assert client.call(
            client.client(MemoryFile, "save_memory"), MemoryFile.Request(path="c.safetensors")
        ).success
        client.call(client.client(Trigger, "reset"), Trigger.Request())
        empty = bytes(client.call(predict, req).views[0].image.data)
        assert full != empty
        load = client.client(MemoryFile, "load_memory")
        reset = client.client(Trigger, "reset")
        seen: list[bytes] = []
        failures: list[str] = []
        stop = threading.Event()

        def predictor() -> None:
            cli = client.node.create_client(PredictViews, client.topic("mirage/predict_views"))
            cli.wait_for_service(timeout_sec=10)
            while not stop.is_set():
                res = client.call(cli, req)
                if res.success:
                    seen.append(bytes(res.views[0].image.data))
                else:
                    failures.append(res.message)

        threads = [threading.Thread(target=predictor) for _ in range(6)]
        for t in threads:
            t.start()
        for i in range(12):
            if i % 2 == 0:
                assert client.call(load, MemoryFile.Request(path="c.safetensors")).success
            else:
                assert client.call(reset, Trigger.Request()).success
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert failures == []
        assert len(seen) >= 12
        assert set(seen) <= {full, empty}
        assert full in seen


def test_requests_over_the_concurrency_limit_get_a_busy_answer_and_the_rest_are_served(
    tmp_path: Path, client: Client, frames: list[Any]
) -> None:
    """max_concurrent_requests:=1: concurrent callers get either a view or an immediate busy
    answer that says which parameter limits them; the node stays up and serves afterwards."""
    from mirage_ros import conversions as conv

    with _live_node(tmp_path, client, frames, "max_concurrent_requests:=1") as (
        proc,
        predict,
        _status,
    ):
        big = _request(frames[3])
        big.poses = [big.poses[0]] * 64  # 64 views at 320x240: seconds, so calls overlap
        K = frames[3].K.copy()
        K[:2] *= 5
        conv.fill_camera_info_msg(big.camera_info, K, 320, 240)
        futures = [predict.call_async(big) for _ in range(6)]
        results = [wait_future(f, 120.0) for f in futures]
        served = [r for r in results if r.success]
        busy = [r for r in results if not r.success]
        assert served and busy, [r.message for r in results]
        assert all("busy" in r.message and "max_concurrent_requests" in r.message for r in busy)
        assert proc.poll() is None
        assert client.call(predict, _request(frames[3])).success  # a free slot again


def test_autosave_survives_kill_9(tmp_path: Path, client: Client, frames: list[Any]) -> None:
    from mirage_ros.core.config import MemoryConfig
    from mirage_ros.core.memory import LatentSpatialMemory

    from mirage_ros_interfaces.srv import PredictViews

    file = tmp_path / "auto.safetensors"
    proc = start_node(tmp_path, f"autosave_path:={file}", "autosave_period_min:=0.02")  # 1.2 s
    client.attach(proc)
    try:
        client.client(PredictViews, "predict_views")
        client.publish_frames(frames)
        status = client.wait_settled(len(frames))
        wait_until(file.is_file, 30, "first autosave")
        time.sleep(2.5)  # at least one autosave after everything was integrated
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    loaded = LatentSpatialMemory(MemoryConfig(device="cpu"))
    loaded.load(file)  # complete and verified (checksum) despite the abrupt stop
    assert loaded.frames_integrated == status.frames_integrated
    assert loaded.num_voxels == status.voxels


def test_time_going_back_keeps_the_node_working(
    tmp_path: Path, client: Client, frames: list[Any]
) -> None:
    """A looped bag: the same frames again with older stamps (reset_tf policy: memory kept)."""
    with _live_node(tmp_path, client, frames) as (_proc, predict, first):
        client.publish_frames(frames)  # time jumps back to the first stamp
        # the first frame after the jump may lose its transform to the TF reset (counted drop)
        second = client.wait_settled(2 * len(frames) - 3)
        assert second.voxels >= first.voxels * 0.9
        assert client.call(predict, _request(frames[3])).success
