"""Bags written by write_bag / `mirage record-synthetic` read back with rosbags, all formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mirage_ros.core.errors import ConfigError
from mirage_ros.sim import SyntheticSequence, write_bag
from mirage_ros.sim.record import TOPICS, TYPES
from sim_worlds import small_config
from transforms3d.quaternions import quat2mat

FRAMES = 12


@pytest.fixture(scope="module")
def seq() -> SyntheticSequence:
    return SyntheticSequence(small_config(seed=5, frames=FRAMES))


def _read(path: Path) -> tuple[dict[str, list[tuple[int, object]]], dict[str, object]]:
    from rosbags.highlevel import AnyReader

    out: dict[str, list[tuple[int, object]]] = {}
    conns: dict[str, object] = {}
    with AnyReader([path]) as reader:
        for c in reader.connections:
            conns[c.topic] = c
        for c, t, raw in reader.messages():
            out.setdefault(c.topic, []).append((t, reader.deserialize(raw, c.msgtype)))
    return out, conns


def _T(tf: object) -> np.ndarray:
    tr, q = tf.transform.translation, tf.transform.rotation  # type: ignore[attr-defined]
    T = np.eye(4)
    T[:3, :3] = quat2mat([q.w, q.x, q.y, q.z])
    T[:3, 3] = (tr.x, tr.y, tr.z)
    return T


def _ns(stamp: object) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("storage", "encoding", "name"),
    [("mcap", "16UC1", "bag_mcap"), ("sqlite3", "32FC1", "bag_sql"), ("rosbag1", "16UC1", "x.bag")],
)
def test_bag_round_trips_topics_types_encodings_frames_and_tf_chain(
    tmp_path: Path, seq: SyntheticSequence, storage: str, encoding: str, name: str
) -> None:
    path = tmp_path / name
    write_bag(seq, path, storage=storage, depth_encoding=encoding)
    msgs, conns = _read(path)
    assert set(msgs) == set(TOPICS.values())
    for key, topic in TOPICS.items():
        assert conns[topic].msgtype == TYPES[key]  # type: ignore[attr-defined]
    rgb, depth = msgs[TOPICS["rgb"]], msgs[TOPICS["depth"]]
    assert len(rgb) == len(depth) == len(msgs[TOPICS["rgb_info"]]) == FRAMES
    # one static transform base_link -> camera, latched
    (static,) = msgs[TOPICS["tf_static"]]
    (tf_static,) = static[1].transforms  # type: ignore[attr-defined]
    assert (tf_static.header.frame_id, tf_static.child_frame_id) == (
        "base_link",
        "camera_color_optical_frame",
    )
    np.testing.assert_allclose(_T(tf_static), seq.T_base_camera, atol=1e-9)
    # dynamic TF: map->odom and odom->base_link at ~50 Hz, covering every image stamp
    tf_by_stamp: dict[int, dict[tuple[str, str], np.ndarray]] = {}
    for _, m in msgs[TOPICS["tf"]]:
        for tf in m.transforms:  # type: ignore[attr-defined]
            key = (tf.header.frame_id, tf.child_frame_id)
            tf_by_stamp.setdefault(_ns(tf.header.stamp), {})[key] = _T(tf)
    stamps = sorted(tf_by_stamp)
    assert np.allclose(np.diff(stamps), 1e9 / 50.0)
    for i, (_, img) in enumerate(rgb):
        frame = seq[i]
        stamp = _ns(img.header.stamp)  # type: ignore[attr-defined]
        assert stamp == frame.stamp_ns and img.encoding == "rgb8"  # type: ignore[attr-defined]
        assert img.header.frame_id == "camera_color_optical_frame"  # type: ignore[attr-defined]
        data = np.asarray(img.data).reshape(frame.rgb.shape)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(data, frame.rgb)
        chain = tf_by_stamp[stamp]
        T = chain[("map", "odom")] @ chain[("odom", "base_link")] @ _T(tf_static)
        np.testing.assert_allclose(T, frame.T_world_camera, atol=1e-6)
        d = depth[i][1]
        assert d.encoding == encoding and _ns(d.header.stamp) == stamp  # type: ignore[attr-defined]
        if encoding == "16UC1":
            mm = np.frombuffer(bytes(d.data), "<u2").reshape(frame.depth_m.shape)  # type: ignore[attr-defined]
            np.testing.assert_allclose(mm / 1000.0, frame.depth_m, atol=5e-4)
        else:
            m = np.frombuffer(bytes(d.data), "<f4").reshape(frame.depth_m.shape)  # type: ignore[attr-defined]
            np.testing.assert_array_equal(m, frame.depth_m)
    info = msgs[TOPICS["rgb_info"]][0][1]
    k = info.K if storage == "rosbag1" else info.k  # type: ignore[attr-defined]
    np.testing.assert_allclose(np.asarray(k).reshape(3, 3), seq.K)


def test_tf_static_is_transient_local_in_rosbag2_metadata(
    tmp_path: Path, seq: SyntheticSequence
) -> None:
    from rosbags.interfaces import QosDurability
    from rosbags.rosbag2 import Reader

    write_bag(seq, tmp_path / "b", storage="mcap")
    with Reader(tmp_path / "b") as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}  # type: ignore[union-attr]
    assert qos["/tf_static"][0].durability == QosDurability.TRANSIENT_LOCAL
    assert qos["/tf"][0].durability == QosDurability.VOLATILE


@pytest.mark.parametrize("offset_ns", [7_000_000, -13_000_000])
def test_depth_offset_shifts_only_depth_stamps_and_the_bag_stays_in_time_order(
    tmp_path: Path, seq: SyntheticSequence, offset_ns: int
) -> None:
    from rosbags.highlevel import AnyReader

    write_bag(seq, tmp_path / "b", storage="mcap", depth_offset_ns=offset_ns)
    msgs, _ = _read(tmp_path / "b")
    rgb = [_ns(m.header.stamp) for _, m in msgs[TOPICS["rgb"]]]  # type: ignore[attr-defined]
    depth = [_ns(m.header.stamp) for _, m in msgs[TOPICS["depth"]]]  # type: ignore[attr-defined]
    assert [d - r for r, d in zip(rgb, depth, strict=True)] == [offset_ns] * FRAMES
    assert rgb == seq.stamps_ns
    with AnyReader([tmp_path / "b"]) as reader:
        log_times = [t for _, t, _ in reader.messages()]
    assert log_times == sorted(log_times)
    # TF covers every image stamp, depth ones included
    tf_stamps = [_ns(m.transforms[0].header.stamp) for _, m in msgs[TOPICS["tf"]]]  # type: ignore[attr-defined]
    assert min(tf_stamps) <= min(depth + rgb) and max(tf_stamps) >= max(depth + rgb)


def test_write_bag_refuses_to_overwrite_and_bad_options(
    tmp_path: Path, seq: SyntheticSequence
) -> None:
    (tmp_path / "exists").mkdir()
    with pytest.raises(ConfigError):
        write_bag(seq, tmp_path / "exists")
    with pytest.raises(ConfigError):
        write_bag(seq, tmp_path / "a", storage="zip")
    with pytest.raises(ConfigError):
        write_bag(seq, tmp_path / "b", depth_encoding="8UC1")


def test_record_synthetic_command_writes_a_readable_bag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mirage_ros.cli import main

    out = tmp_path / "cli_bag"
    code = main(
        [
            "record-synthetic",
            str(out),
            "--frames",
            "5",
            "--width",
            "32",
            "--height",
            "24",
            "--seed",
            "2",
            "--quiet",
            "--storage",
            "sqlite3",
            "--event",
            "remove",
        ]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    msgs, _ = _read(out)
    assert len(msgs[TOPICS["rgb"]]) == 5
    assert main(["record-synthetic", str(out), "--frames", "5", "--quiet"]) == 2  # exists
