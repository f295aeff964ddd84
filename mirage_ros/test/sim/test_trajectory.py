"""The trajectory: rigid poses, the TF chain, a ground robot's motion, clearance, revisits."""

from __future__ import annotations

import numpy as np
import pytest
from mirage_ros.sim import SyntheticSequence, make_scene
from mirage_ros.sim.trajectory import chaikin
from mirage_ros.sim.world import ROBOT_RADIUS_M, path_clearance_m
from sim_worlds import small_config


def test_every_pose_is_rigid_and_the_chain_composes(apartment_seq: SyntheticSequence) -> None:
    poses = apartment_seq.poses()
    R = poses[:, :3, :3]
    np.testing.assert_allclose(
        R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9
    )
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    np.testing.assert_array_equal(
        poses[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (len(poses), 4))
    )
    for i in (0, 17, 400):
        f = apartment_seq[i]
        np.testing.assert_allclose(
            f.T_map_odom @ f.T_odom_base @ f.T_base_camera, f.T_world_camera, atol=1e-12
        )
        np.testing.assert_allclose(f.T_world_camera, poses[i], atol=1e-12)


def test_camera_moves_like_a_ground_robot(apartment_seq: SyntheticSequence) -> None:
    cfg = apartment_seq.config
    poses = apartment_seq.poses()
    np.testing.assert_allclose(poses[:, 2, 3], cfg.camera_height_m, atol=1e-9)
    # the optical axis is pitched down by camera_pitch_deg, the image x axis stays level
    np.testing.assert_allclose(poses[:, 2, 2], -np.sin(np.radians(cfg.camera_pitch_deg)), atol=1e-9)
    np.testing.assert_allclose(poses[:, 2, 0], 0.0, atol=1e-9)
    step = np.linalg.norm(np.diff(poses[:, :2, 3], axis=0), axis=1)
    assert step.max() <= cfg.speed_mps / cfg.camera_rate_hz * 1.3  # the lever arm adds a little
    z = poses[:, :3, 2]
    turn = np.degrees(np.arccos(np.clip((z[1:] * z[:-1]).sum(1), -1, 1)))
    assert turn.max() < 20.0, "no jumps: at most 20 deg between 10 Hz frames"


@pytest.mark.parametrize("kind", ["apartment", "room"])
@pytest.mark.parametrize("seed", [0, 4, 9])
def test_the_path_keeps_clear_of_walls_and_objects(kind: str, seed: int) -> None:
    scene = make_scene(small_config(seed=seed, kind=kind, frames=1500, event="move"))
    assert path_clearance_m(scene, scene.trajectory) >= ROBOT_RADIUS_M  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_robot_comes_back_to_an_earlier_view_after_a_long_gap(seed: int) -> None:
    seq = SyntheticSequence(small_config(seed=seed, frames=600))
    poses = seq.poses()
    p, z = poses[:, :3, 3], poses[:, :3, 2]
    near = np.linalg.norm(p[:, None] - p[None], axis=-1) < 0.5
    same_view = np.degrees(np.arccos(np.clip(z @ z.T, -1.0, 1.0))) < 20.0
    idx = np.arange(len(seq))
    long_gap = (idx[:, None] - idx[None]) >= 15 * seq.config.camera_rate_hz  # 15 s later
    assert np.any(near & same_view & long_gap)


def test_new_rooms_keep_appearing(apartment_seq: SyntheticSequence) -> None:
    where = apartment_seq.scene.space_index(apartment_seq.poses()[:, :2, 3])
    first_seen = sorted({int(w): i for i, w in reversed(list(enumerate(where)))}.values())
    assert len(first_seen) >= 3
    assert first_seen[-1] > len(apartment_seq) // 3, "some space is first seen late"


def test_tf_rate_poses_interpolate_between_frames(apartment_seq: SyntheticSequence) -> None:
    s0, s1 = apartment_seq.stamps_ns[10], apartment_seq.stamps_ns[11]
    mid = apartment_seq.T_world_camera_at((s0 + s1) // 2)
    a, b = apartment_seq.T_world_camera_at(s0), apartment_seq.T_world_camera_at(s1)
    lo, hi = np.minimum(a[:3, 3], b[:3, 3]) - 1e-3, np.maximum(a[:3, 3], b[:3, 3]) + 1e-3
    assert np.all((mid[:3, 3] >= lo) & (mid[:3, 3] <= hi))


def test_chaikin_keeps_endpoints_and_stays_in_the_hull() -> None:
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0]])
    out = chaikin(pts, 4)
    np.testing.assert_array_equal(out[0], pts[0])
    np.testing.assert_array_equal(out[-1], pts[-1])
    assert (
        out[:, 0].min() >= 0
        and out[:, 0].max() <= 2
        and out[:, 1].min() >= 0
        and out[:, 1].max() <= 1
    )


@pytest.mark.parametrize("kind", ["apartment", "room"])
def test_a_longer_sequence_of_the_same_seed_starts_with_the_same_poses(kind: str) -> None:
    short = SyntheticSequence(small_config(seed=6, kind=kind, frames=150))
    long = SyntheticSequence(small_config(seed=6, kind=kind, frames=1200))
    np.testing.assert_array_equal(short.poses(), long.poses()[:150])
    assert short.stamps_ns == long.stamps_ns[:150]
