"""System tests that start and stop their own nodes: persistence across a restart, two cameras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mirage_ros.sim import SceneConfig, SyntheticSequence
from rosutil import Client, start_node, stop_node

from .test_node_system import H, W, _predict, _request

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    return list(
        SyntheticSequence(SceneConfig(seed=4, frames=12, width=W, height=H, texture_set="test"))
    )


@pytest.fixture(scope="module")
def client() -> Any:
    c = Client("mirage_restart_client")
    yield c
    c.close()


def test_save_restart_load_gives_identical_prediction(tmp_path: Path, client, frames) -> None:
    from mirage_ros_interfaces.srv import MemoryFile, PredictViews

    first = start_node(tmp_path)
    client.attach(first)
    try:
        client.client(PredictViews, "predict_views")
        client.publish_frames(frames)
        client.wait_settled(len(frames))
        req = _request(frames[5:6], virtual_camera=True)
        before = _predict(client, req)
        assert before.success, before.message
        saved = client.call(
            client.client(MemoryFile, "save_memory"), MemoryFile.Request(path="restart.safetensors")
        )
        assert saved.success, saved.message
    finally:
        assert stop_node(first) == 0
    file = tmp_path / "restart.safetensors"
    second = start_node(tmp_path, f"load_path:={file}", log_name="node2.log")
    client.attach(second)
    try:
        client.client(PredictViews, "predict_views")
        after = _predict(client, req)
        assert after.success, after.message
        assert bytes(before.views[0].image.data) == bytes(after.views[0].image.data)
        assert bytes(before.views[0].depth.data) == bytes(after.views[0].depth.data)
        assert bytes(before.views[0].confidence.data) == bytes(after.views[0].confidence.data)
    finally:
        assert stop_node(second) == 0


def test_two_cameras_are_both_integrated(tmp_path: Path, client, frames) -> None:
    from mirage_ros_interfaces.srv import PredictViews

    proc = start_node(tmp_path, "camera_namespaces:=[cam_a, cam_b]")
    client.attach(proc)
    try:
        client.client(PredictViews, "predict_views")
        client.publish_frames(frames[:6], camera_ns="cam_a", camera_frame="cam_a_optical")
        client.publish_frames(frames[6:], camera_ns="cam_b", camera_frame="cam_b_optical")
        status = client.wait_settled(len(frames))
        assert status.dropped_no_transform == 0
    finally:
        stop_node(proc)


def test_topic_remaps_reach_the_sensor_subscriptions(tmp_path: Path, client, frames) -> None:
    """The camera topics are subscribed by the companion node mirage_sensors: a remap on the
    command line (as a launch file gives it) applies to them (the node-name rules that must
    not: test_node_config)."""
    from mirage_ros_interfaces.srv import PredictViews

    topics = ("color/image_raw", "color/camera_info", "depth/image_raw")
    proc = start_node(tmp_path, remaps=tuple(f"camera/{t}:=moved/{t}" for t in topics))
    client.attach(proc)
    try:
        client.client(PredictViews, "predict_views")
        client.publish_frames(frames[:6], camera_ns="moved", camera_frame="moved_optical")
        assert client.wait_settled(6).frames_integrated == 6
        names = client.node.get_node_names_and_namespaces()
        ns = proc.ns  # type: ignore[attr-defined]
        assert sorted(n for n, n_ns in names if n_ns == ns) == ["mirage", "mirage_sensors"]
    finally:
        stop_node(proc)
