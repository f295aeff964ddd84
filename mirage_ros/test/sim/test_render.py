"""The renderer: exact depth, agreement with the brute-force reference, determinism, events."""

from __future__ import annotations

import numpy as np
import pytest
from mirage_ros.core.errors import PoseError, ShapeError
from mirage_ros.sim import SceneConfig, make_scene, render_view, render_view_reference
from mirage_ros.sim.raycast import cast, cast_reference
from sim_worlds import look_along_x, small_config, wall_scene

K = np.array([[40.0, 0.0, 31.5], [0.0, 40.0, 23.5], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize(("yaw", "pitch"), [(0.0, 0.0), (0.3, 0.0), (-0.4, 0.2), (0.5, -0.3)])
def test_depth_is_the_analytic_z_depth_of_a_plane(yaw: float, pitch: float) -> None:
    scene = wall_scene(4.0)
    T = look_along_x(yaw, pitch)
    _, depth = render_view(scene, K, T, 64, 48)
    # the plane x = 4 in camera coordinates: z-depth of pixel (u, v) is 4 / (R[0] . ray)
    u, v = np.meshgrid(np.arange(64), np.arange(48))
    ray = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], -1)
    expected = 4.0 / (ray @ T[:3, :3][0])
    np.testing.assert_allclose(depth, expected, rtol=1e-5)


def test_unprojected_depth_lands_on_the_plane() -> None:
    scene = wall_scene(2.5)
    T = look_along_x(0.2, 0.1)
    T[:3, 3] = (0.3, -0.2, 1.0)
    _, depth = render_view(scene, K, T, 64, 48)
    u, v = np.meshgrid(np.arange(64), np.arange(48))
    pc = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    pw = pc.reshape(-1, 3) @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_allclose(pw[:, 0], 2.5, atol=1e-5)


def test_nothing_hit_gives_zero_depth_and_black() -> None:
    scene = wall_scene(4.0)
    rgb, depth = render_view(scene, K, look_along_x(np.pi), 64, 48)  # looking away
    assert np.all(depth == 0.0) and np.all(rgb == 0)


def test_fast_caster_agrees_with_brute_force_reference() -> None:
    config = small_config(seed=1)
    scene = make_scene(config)
    traj = scene.trajectory
    for t in (0.0, 3.0, 7.5, 11.0):
        T = traj.T_world_camera(np.array([t]))[0]  # type: ignore[union-attr]
        d_fast, box_fast, _ = cast(scene, config.K, T, 64, 48)
        d_ref, box_ref, _ = cast_reference(scene, config.K, T, 64, 48)
        np.testing.assert_array_equal(box_fast, box_ref)
        np.testing.assert_array_equal(d_fast, d_ref)
        rgb_fast, _ = render_view(scene, config.K, T, 64, 48)
        rgb_ref, _ = render_view_reference(scene, config.K, T, 64, 48)
        np.testing.assert_array_equal(rgb_fast, rgb_ref)


def test_indoor_views_hit_a_surface_everywhere(apartment_seq) -> None:  # type: ignore[no-untyped-def]
    for i in range(0, len(apartment_seq), 150):
        frame = apartment_seq[i]
        assert np.all(frame.depth_m > 0.05), f"frame {i} has holes"
        assert frame.depth_m.max() < 30.0
        assert frame.rgb.std() > 5.0, "a view should show texture"


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    a = make_scene(small_config(seed=7))
    b = make_scene(small_config(seed=7))
    c = make_scene(small_config(seed=8))
    T = a.trajectory.T_world_camera(np.array([2.0]))[0]  # type: ignore[union-attr]
    K = small_config().K
    ra, da = render_view(a, K, T, 64, 48)
    rb, db = render_view(b, K, T, 64, 48)
    assert ra.tobytes() == rb.tobytes() and da.tobytes() == db.tobytes()
    rc, _ = render_view(c, K, T, 64, 48)
    assert ra.tobytes() != rc.tobytes()


@pytest.mark.parametrize("event", ["remove", "move"])
def test_event_changes_the_render_only_after_the_event(event: str) -> None:
    config = small_config(seed=2, event=event, frames=900)
    scene = make_scene(config)
    assert scene.event_box is not None and scene.event_stamp_ns is not None
    lo, hi = scene.lo[scene.event_box], scene.hi[scene.event_box]
    centre = (lo + hi) / 2
    # a camera 2 m in front of the object, looking at it (from the room's centre side)
    room = scene.spaces[int(scene.space_index(centre[None, :2])[0])]
    mid = (np.asarray(room.lo) + np.asarray(room.hi)) / 2
    direction = centre[:2] - mid
    yaw = float(np.arctan2(direction[1], direction[0]))
    T = look_along_x(yaw, 0.3)
    T[:3, 3] = (*mid, 1.3)
    stamp = scene.event_stamp_ns
    before_rgb, before_d = render_view(scene, config.K, T, 64, 48, stamp - 1)
    initial_rgb, _ = render_view(scene, config.K, T, 64, 48, None)
    after_rgb, after_d = render_view(scene, config.K, T, 64, 48, stamp)
    assert np.array_equal(before_rgb, initial_rgb)
    assert not np.array_equal(before_d, after_d)
    later_rgb, _ = render_view(scene, config.K, T, 64, 48, stamp + 10**9)
    assert np.array_equal(after_rgb, later_rgb)


def test_bad_inputs_raise_typed_errors() -> None:
    scene = wall_scene()
    with pytest.raises(ShapeError):
        render_view(scene, np.eye(2), np.eye(4), 8, 8)
    with pytest.raises(ShapeError):
        render_view(scene, K, np.eye(3), 8, 8)
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(PoseError):
        render_view(scene, K, bad, 8, 8)


def test_config_refuses_bad_values() -> None:
    from mirage_ros.core.errors import ConfigError

    for kw in (
        {"kind": "castle"},
        {"texture_set": "val"},
        {"event": "explode"},
        {"frames": 0},
        {"texture_px": 100},
        {"event_frame": 5, "frames": 5},
        {"tf_rate_hz": 1.0},
    ):
        with pytest.raises(ConfigError):
            SceneConfig(**kw)  # type: ignore[arg-type]


def test_frames_are_identical_across_processes() -> None:
    """Same seed -> same bytes, whatever the interpreter's hash seed."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib\n"
        "from mirage_ros.sim import SceneConfig, SyntheticSequence\n"
        "s = SyntheticSequence(SceneConfig(seed=4, width=32, height=24, texture_px=32, frames=50,"
        " event='move'))\n"
        "h = hashlib.sha256()\n"
        "for i in (0, 25, 49):\n"
        "    f = s[i]\n"
        "    h.update(f.rgb.tobytes() + f.depth_m.tobytes() + f.T_world_camera.tobytes())\n"
        "print(h.hexdigest())\n"
    )
    namespace: dict[str, str] = {}
    exec(code.replace("print(h.hexdigest())", "digest = h.hexdigest()"), namespace)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == namespace["digest"]
