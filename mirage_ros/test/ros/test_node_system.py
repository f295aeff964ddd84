"""System tests: mirage_node in its own process, this process as a client over DDS (loopback)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from mirage_ros.sim import SceneConfig, SyntheticSequence
from rosutil import Client, psnr, start_node, stop_node, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

W, H = 96, 72
N_FRAMES = 24


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    seq = SyntheticSequence(
        SceneConfig(seed=3, frames=N_FRAMES, width=W, height=H, texture_set="test")
    )
    return list(seq)


@pytest.fixture(scope="module")
def client() -> Any:
    c = Client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, client: Client, frames: list[Any]) -> Any:
    """A node that has integrated the module's frames."""
    tmp = tmp_path_factory.mktemp("node")
    proc = start_node(tmp, "max_poses_per_request:=16")
    client.attach(proc)
    from mirage_ros_interfaces.srv import PredictViews

    client.client(PredictViews, "predict_views")
    client.publish_frames(frames)
    client.wait_settled(N_FRAMES)
    yield proc, tmp
    assert proc.poll() is None, "the node died during the tests"
    stop_node(proc)


def _request(frames: list[Any], poses: list[Any] | None = None, **kw: Any) -> Any:
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo

    from mirage_ros import conversions as conv
    from mirage_ros_interfaces.srv import PredictViews

    req = PredictViews.Request(with_depth=True, with_confidence=True)
    if poses is None:
        poses = []
        for f in frames:
            p = PoseStamped()
            p.header.frame_id = "map"
            conv.fill_pose_msg(p.pose, f.T_world_camera)
            poses.append(p)
    req.poses = poses
    if kw.pop("virtual_camera", False):
        info = CameraInfo()
        conv.fill_camera_info_msg(info, frames[0].K, W, H)
        req.camera_info = info
    for k, v in kw.items():
        setattr(req, k, v)
    return req


def _predict(client: Client, req: Any) -> Any:
    from mirage_ros_interfaces.srv import PredictViews

    return client.call(client.client(PredictViews, "predict_views"), req)


def _arrays(view: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from mirage_ros import conversions as conv

    rgb = conv.image_from_msg(view.image)
    conf = np.frombuffer(bytes(view.confidence.data), np.float32).reshape(H, W)
    depth = np.frombuffer(bytes(view.depth.data), np.float32).reshape(H, W)
    return rgb, conf, depth


def test_prediction_at_a_visited_pose_matches_the_real_frame(running, client, frames) -> None:
    res = _predict(client, _request(frames[5:8]))
    assert res.success, res.message
    assert len(res.views) == 3
    for view, f in zip(res.views, frames[5:8], strict=True):
        rgb, conf, depth = _arrays(view)
        covered = np.isfinite(depth)
        assert view.coverage_fraction > 0.6
        assert view.image.encoding == "rgb8" and view.depth.encoding == "32FC1"
        assert view.camera_info.width == W and view.camera_info.height == H
        assert conf.min() >= 0.0 and conf.max() <= 1.0
        assert psnr(rgb, f.rgb, covered) > 20.0
        # the predicted depth agrees with the true depth where the memory has a surface
        rel = np.abs(depth[covered] - f.depth_m[covered]) / f.depth_m[covered]
        assert float(np.median(rel)) < 0.1


def test_body_frame_request_equals_the_optical_frame_request(running, client, frames) -> None:
    from geometry_msgs.msg import PoseStamped

    from mirage_ros import conversions as conv

    f = frames[6]
    body = PoseStamped()
    body.header.frame_id = "map"
    conv.fill_pose_msg(body.pose, f.T_world_camera @ np.linalg.inv(f.T_base_camera))
    a = _predict(client, _request([f]))
    b = _predict(client, _request([f], poses=[body], body_frame="base_link"))
    assert a.success and b.success, (a.message, b.message)
    ra, rb = _arrays(a.views[0])[0], _arrays(b.views[0])[0]
    assert np.abs(ra.astype(int) - rb.astype(int)).mean() < 2.0


def _bad_pose(kind: str) -> Any:
    from geometry_msgs.msg import PoseStamped

    p = PoseStamped()
    p.header.frame_id = "map"
    p.pose.orientation.w = 1.0
    if kind == "unknown_frame":
        p.header.frame_id = "no_such_frame"
    elif kind == "zero_quaternion":
        p.pose.orientation.w = 0.0
    elif kind == "unnormalised":
        p.pose.orientation.w = 2.0
    elif kind == "nan":
        p.pose.position.x = math.nan
    elif kind == "empty_frame":
        p.header.frame_id = ""
    return p


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("unknown_frame", "no_such_frame"),
        ("zero_quaternion", "quaternion"),
        ("unnormalised", "normalised"),
        ("nan", "finite"),
        ("empty_frame", "frame_id"),
    ],
)
def test_bad_pose_is_rejected_with_a_message(running, client, frames, kind, hint) -> None:
    before = client.latest_status().voxels
    res = _predict(client, _request(frames, poses=[_bad_pose(kind)]))
    assert not res.success
    assert hint in res.message.lower() or hint in res.message
    assert res.views == []
    assert client.latest_status().voxels == before


def test_impossible_intrinsics_and_oversized_requests_are_rejected(running, client, frames) -> None:
    req = _request(frames[:1], virtual_camera=True)
    req.camera_info.k[0] = -5.0
    res = _predict(client, req)
    assert not res.success and "camera_info" in res.message
    res = _predict(client, _request(frames[:1] * 17))
    assert not res.success and "max_poses_per_request" in res.message
    res = _predict(client, _request(frames, poses=[]))
    assert not res.success and "no poses" in res.message


def test_unsupported_encoding_is_a_counted_drop_and_the_node_stays_up(
    running, client, frames
) -> None:
    from sensor_msgs.msg import Image

    before = client.latest_status().dropped_bad_input
    img = Image(height=H, width=W, encoding="yuv422_weird", step=W * 2)
    img.header.frame_id = "camera_color_optical_frame"
    img.data = bytes(W * H * 2)
    client.publisher(Image, client.topic("camera/color/image_raw")).publish(img)
    wait_until(lambda: client.latest_status().dropped_bad_input > before, 20, "bad input counted")
    assert _predict(client, _request(frames[:1])).success


def test_trajectory_action_streams_one_view_per_pose(running, client, frames) -> None:
    from nav_msgs.msg import Path as PathMsg
    from rclpy.action import ActionClient
    from rosutil import wait_future

    from mirage_ros_interfaces.action import PredictTrajectory

    path = PathMsg()
    path.header.frame_id = "map"
    path.poses = list(_request(frames[2:6]).poses)
    for p in path.poses:
        p.header.frame_id = ""  # takes the path's frame
    ac = ActionClient(client.node, PredictTrajectory, client.topic("mirage/predict_trajectory"))
    assert ac.wait_for_server(timeout_sec=30)
    feedback: list[Any] = []
    gh = wait_future(
        ac.send_goal_async(
            PredictTrajectory.Goal(path=path, with_depth=True),
            feedback_callback=lambda m: feedback.append(m.feedback),
        ),
        60,
    )
    assert gh.accepted
    result = wait_future(gh.get_result_async(), 120).result
    assert result.success, result.message
    assert result.views_predicted == result.views_requested == 4
    wait_until(lambda: len(feedback) == 4, 10, "feedback")
    assert sorted(fb.index for fb in feedback) == [0, 1, 2, 3]
    assert all(fb.view.coverage_fraction > 0.5 for fb in feedback)


def test_save_paths_outside_memory_dir_are_refused(running, client) -> None:
    from mirage_ros_interfaces.srv import MemoryFile

    res = client.call(
        client.client(MemoryFile, "save_memory"), MemoryFile.Request(path="../escape.safetensors")
    )
    assert not res.success and "outside memory_dir" in res.message
    res = client.call(
        client.client(MemoryFile, "load_memory"), MemoryFile.Request(path="missing.safetensors")
    )
    assert not res.success and "load failed" in res.message
