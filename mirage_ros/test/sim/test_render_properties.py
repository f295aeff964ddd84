"""Property tests of the caster over random cameras inside a furnished room (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mirage_ros.sim import make_scene
from mirage_ros.sim.raycast import cast, cast_reference
from sim_worlds import look_along_x, small_config

SCENE = make_scene(small_config(seed=0, kind="room"))
K = np.array([[12.0, 0.0, 7.5], [0.0, 12.0, 5.5], [0.0, 0.0, 1.0]])


def _camera(fx: float, fy: float, z: float, yaw: float, pitch: float) -> np.ndarray:
    room = SCENE.spaces[0]
    T = look_along_x(yaw, pitch)
    x = room.lo[0] + 0.3 + fx * (room.hi[0] - room.lo[0] - 0.6)
    y = room.lo[1] + 0.3 + fy * (room.hi[1] - room.lo[1] - 0.6)
    T[:3, 3] = (x, y, z)
    return T


cameras = st.builds(
    _camera,
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.2, 2.3),
    st.floats(-np.pi, np.pi),
    st.floats(-1.2, 1.2),
)


@settings(max_examples=40, deadline=None)
@given(T=cameras)
def test_fast_and_reference_casters_agree_for_any_camera(T: np.ndarray) -> None:
    d_fast, b_fast, _ = cast(SCENE, K, T, 16, 12)
    d_ref, b_ref, _ = cast_reference(SCENE, K, T, 16, 12)
    np.testing.assert_array_equal(b_fast, b_ref)
    np.testing.assert_array_equal(d_fast, d_ref)


@settings(max_examples=40, deadline=None)
@given(T=cameras)
def test_every_hit_lies_on_the_surface_of_its_box_and_inside_no_other(T: np.ndarray) -> None:
    depth, box, _ = cast(SCENE, K, T, 16, 12)
    hit = box >= 0
    camera_inside = np.all((T[:3, 3] > SCENE.lo) & (T[:3, 3] < SCENE.hi), axis=1)
    if camera_inside.any():  # a camera inside furniture sees its inside faces: skip those
        return
    assert hit.all(), "a closed room has no holes"
    v, u = np.nonzero(hit)
    z = depth[v, u].astype(np.float64)
    pc = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    pw = pc @ T[:3, :3].T + T[:3, 3]
    b = box[v, u]
    lo, hi = SCENE.lo[b], SCENE.hi[b]
    tol = 1e-3 * np.maximum(z, 1.0)[:, None]
    assert np.all((pw >= lo - tol) & (pw <= hi + tol)), "inside its box's bounds"
    on_face = np.minimum(np.abs(pw - lo), np.abs(pw - hi)).min(axis=1) <= tol[:, 0]
    assert on_face.all(), "on one of its faces"
    strictly_inside = np.all(
        (pw[:, None] > SCENE.lo[None] + 1e-2) & (pw[:, None] < SCENE.hi[None] - 1e-2), axis=2
    )
    assert not strictly_inside.any(), "no other box contains a visible point"
