"""TransformBuffer: chains, interpolation, static frames, errors, cycles, threads."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace as NS

import numpy as np
import pytest
import transforms3d
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from mirage_ros.core.errors import ConfigError, MirageError, TransformError
from mirage_ros.transforms import TransformBuffer

S = 1_000_000_000


def _T(x: float = 0.0, y: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = transforms3d.euler.euler2mat(0, 0, yaw)
    T[:3, 3] = (x, y, z)
    return T


@pytest.fixture
def tree() -> TransformBuffer:
    buf = TransformBuffer()
    buf.set_transform("map", "odom", _T(1.0), 0, static=True)
    for i in range(11):
        buf.set_transform("odom", "base_link", _T(x=0.1 * i, yaw=0.05 * i), i * S // 10, False)
    buf.set_transform("base_link", "camera", _T(z=1.0), 0, static=True)
    return buf


def test_chain_composes_static_and_dynamic(tree: TransformBuffer) -> None:
    T = tree.lookup("map", "camera", S // 2)
    expected = _T(1.0) @ _T(x=0.5, yaw=0.25) @ _T(z=1.0)
    assert np.allclose(T, expected, atol=1e-9)


def test_interpolation_between_stamps_is_linear_and_slerped(tree: TransformBuffer) -> None:
    T = tree.lookup("odom", "base_link", S // 20)  # half way between stamps 0 and 1
    assert np.allclose(T, _T(x=0.05, yaw=0.025), atol=1e-9)


def test_inverse_lookup_is_the_inverse(tree: TransformBuffer) -> None:
    a = tree.lookup("map", "camera", 3 * S // 10)
    b = tree.lookup("camera", "map", 3 * S // 10)
    assert np.allclose(a @ b, np.eye(4), atol=1e-9)


def test_stamp_zero_means_latest_common_time(tree: TransformBuffer) -> None:
    assert np.allclose(tree.lookup("map", "camera", 0), tree.lookup("map", "camera", S))


def test_extrapolation_is_an_error_that_says_how_far(tree: TransformBuffer) -> None:
    with pytest.raises(TransformError, match=r"500\.0 ms into the future"):
        tree.lookup("map", "camera", S + S // 2)
    assert not tree.can_transform("map", "camera", -1)


def test_unknown_frame_names_the_known_frames(tree: TransformBuffer) -> None:
    with pytest.raises(TransformError, match="'nope' does not exist; known frames: base_link"):
        tree.lookup("map", "nope", 0)


def test_disconnected_trees_are_reported(tree: TransformBuffer) -> None:
    tree.set_transform("world2", "thing", _T(), 0, static=True)
    with pytest.raises(TransformError, match="no transform path"):
        tree.lookup("map", "thing", 0)


def test_reparenting_replaces_the_parent_like_tf2(tree: TransformBuffer) -> None:
    tree.set_transform("map", "camera", _T(y=2.0), 0, static=True)
    assert np.allclose(tree.lookup("map", "camera", 0), _T(y=2.0))


def test_a_cycle_is_detected_not_looped(tree: TransformBuffer) -> None:
    tree.set_transform(
        "camera", "map", _T(), 0, static=True
    )  # map -> odom -> base -> camera -> map
    with pytest.raises(TransformError, match="cycle"):
        tree.lookup("map", "camera", 0)
    assert not tree.can_transform("odom", "camera", 0)


def test_tf_messages_with_bad_entries_count_rejections() -> None:
    def entry(parent, child, qw=1.0, x=0.0):
        return NS(
            header=NS(frame_id=parent, stamp=NS(sec=1, nanosec=0)),
            child_frame_id=child,
            transform=NS(translation=NS(x=x, y=0.0, z=0.0), rotation=NS(x=0.0, y=0.0, z=0.0, w=qw)),
        )

    buf = TransformBuffer()
    msg = NS(
        transforms=[
            entry("map", "a"),
            entry("map", "b", qw=0.0),
            entry("map", "c", x=math.nan),
            entry("", "d"),
            entry("e", "e"),
            entry("/map", "/f"),
        ]
    )
    assert buf.add_tf_message(msg, static=False) == (2, 4)
    assert buf.frames() == ["a", "f", "map"]


def test_cache_time_bounds_history() -> None:
    buf = TransformBuffer(cache_time_s=1.0)
    for i in range(100):
        buf.set_transform("map", "base", _T(x=i), i * S // 10, static=False)
    with pytest.raises(TransformError, match="past"):
        buf.lookup("map", "base", 0 + 1)
    assert buf.can_transform("map", "base", 95 * S // 10)


def test_clear_keeps_static_transforms(tree: TransformBuffer) -> None:
    tree.clear()
    assert tree.can_transform("base_link", "camera", 0)
    assert not tree.can_transform("odom", "base_link", 0) or "base_link" not in tree.frames()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-10, 10), st.floats(-math.pi, math.pi)), min_size=1, max_size=6)
)
def test_random_chains_compose_like_matrix_products(links) -> None:
    buf = TransformBuffer()
    expected = np.eye(4)
    for i, (x, yaw) in enumerate(links):
        buf.set_transform(f"f{i}", f"f{i + 1}", _T(x=x, yaw=yaw), 0, static=True)
        expected = expected @ _T(x=x, yaw=yaw)
    T = buf.lookup("f0", f"f{len(links)}", 0)
    assert np.allclose(T, expected, atol=1e-7)
    assert np.allclose(T @ buf.lookup(f"f{len(links)}", "f0", 0), np.eye(4), atol=1e-7)


def test_concurrent_writers_and_readers_never_fail_unexpectedly(tree: TransformBuffer) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        for i in range(11, 400):
            tree.set_transform("odom", "base_link", _T(x=0.1 * i), i * S // 10, False)

    def reader() -> None:
        try:
            for _ in range(400):
                tree.lookup("map", "camera", 0)
        except MirageError:
            pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_cache_time_must_be_positive_and_inf_keeps_everything() -> None:
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ConfigError):
            TransformBuffer(cache_time_s=bad)
    buf = TransformBuffer(cache_time_s=math.inf)
    for i in range(50):
        buf.set_transform("map", "base", _T(x=i), i * 1000 * S, static=False)
    assert np.allclose(buf.lookup("map", "base", 0 + 1)[:3, 3], (1e-12, 0, 0), atol=1e-9)


def test_reparenting_after_a_lookup_is_seen_by_the_next_lookup(tree: TransformBuffer) -> None:
    before = tree.lookup("map", "camera", S // 2)
    tree.set_transform("odom", "camera", _T(y=3.0), 0, static=True)  # camera now hangs off odom
    after = tree.lookup("map", "camera", S // 2)
    assert not np.allclose(before, after)
    assert np.allclose(after, _T(1.0) @ _T(y=3.0))


def test_out_of_order_stamps_are_sorted_on_insertion() -> None:
    ordered, shuffled = TransformBuffer(), TransformBuffer()
    stamps = list(range(0, 10 * S, S))
    for i in stamps:
        ordered.set_transform("map", "base", _T(x=i / S, yaw=i / S / 10), i, static=False)
    for i in reversed(stamps):
        shuffled.set_transform("map", "base", _T(x=i / S, yaw=i / S / 10), i, static=False)
    for t in (0, S // 3, 5 * S + 7, 9 * S):
        assert np.allclose(ordered.lookup("map", "base", t), shuffled.lookup("map", "base", t))


@settings(max_examples=100, deadline=None)
@given(
    q0=st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: sum(v * v for v in q) > 0.1),
    q1=st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: sum(v * v for v in q) > 0.1),
    a=st.floats(0, 1),
)
@example(q0=(0.0, 1.0, 0.0, 0.5), q1=(7.435055555892444e-11, 1.0, 0.0, 0.5), a=1.0)
def test_interpolated_rotation_follows_the_shortest_geodesic(q0, q1, a) -> None:
    """Reference: R(a) = R0 expm(a log(R0^T R1)) via axis-angle (transforms3d)."""
    R0 = transforms3d.quaternions.quat2mat(np.array(q0) / np.linalg.norm(q0))
    R1 = transforms3d.quaternions.quat2mat(np.array(q1) / np.linalg.norm(q1))
    buf = TransformBuffer()
    T0, T1 = np.eye(4), np.eye(4)
    T0[:3, :3], T1[:3, :3] = R0, R1
    buf.set_transform("a", "b", T0, S, static=False)
    buf.set_transform("a", "b", T1, 2 * S, static=False)
    got = buf.lookup("a", "b", S + round(a * S))
    if np.abs(R0.T @ R1 - np.eye(3)).max() < 1e-5:
        # (nearly) one rotation: the axis of R0^T R1 is ill-defined and the reference's is
        # noise (hypothesis found q0, q1 1e-10 apart with a reference 1e-3 off); every rotation
        # in between lies within their difference
        assert np.allclose(got[:3, :3], R0, atol=2e-5)
        return
    axis, angle = transforms3d.axangles.mat2axangle(R0.T @ R1)
    # at 180 degrees both directions are shortest; judge by the trace, since mat2axangle may
    # report a half turn as a negative angle
    cos_angle = (np.trace(R0.T @ R1) - 1.0) / 2.0
    assume(cos_angle > math.cos(math.pi - 1e-3))
    expected = R0 @ transforms3d.axangles.axangle2mat(axis, a * angle)
    assert np.allclose(got[:3, :3], expected, atol=1e-6)


def test_rclpy_tf_messages_are_read() -> None:
    tf2_msgs = pytest.importorskip("tf2_msgs.msg")
    geometry = pytest.importorskip("geometry_msgs.msg")
    from mirage_ros import conversions as conv

    t = geometry.TransformStamped()
    t.header.frame_id, t.child_frame_id = "map", "base"
    conv.fill_stamp(t.header.stamp, 2 * S)
    conv.fill_transform_msg(t.transform, _T(x=1.0, yaw=0.5))
    buf = TransformBuffer()
    assert buf.add_tf_message(tf2_msgs.TFMessage(transforms=[t]), static=True) == (1, 0)
    assert np.allclose(buf.lookup("map", "base", 0), _T(x=1.0, yaw=0.5))


def test_tf_messages_keep_their_quaternion_and_look_up_as_matrices_do() -> None:
    """A TF message's quaternion is stored as given (w >= 0; no eigen-decomposition of the
    matrix): lookups match a buffer fed the same transforms as matrices."""
    from mirage_ros.conversions import transform_and_quat_from_msg

    rng = np.random.default_rng(3)
    from_msgs, from_matrices = TransformBuffer(), TransformBuffer()
    for i in range(6):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * (-1 if i % 2 else 1)  # half of them with w < 0
        t = NS(
            header=NS(frame_id="map", stamp=NS(sec=i, nanosec=0)),
            child_frame_id="base",
            transform=NS(
                translation=NS(x=float(i), y=0.5, z=0.0),
                rotation=NS(x=q[1], y=q[2], z=q[3], w=q[0]),
            ),
        )
        assert from_msgs.add_tf_message(NS(transforms=[t]), static=False) == (1, 0)
        T, q_wxyz = transform_and_quat_from_msg(t.transform)
        assert q_wxyz[0] >= 0 and np.isclose(np.linalg.norm(q_wxyz), 1.0)
        assert np.allclose(transforms3d.quaternions.quat2mat(q_wxyz), T[:3, :3])
        from_matrices.set_transform("map", "base", T, i * S, static=False)
    for stamp in (0, S // 3, 2 * S + 7, 5 * S):
        got = from_msgs.lookup("map", "base", stamp)
        assert np.allclose(got, from_matrices.lookup("map", "base", stamp), atol=1e-12)
