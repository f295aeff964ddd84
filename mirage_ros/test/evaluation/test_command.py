"""`mirage eval` end to end on tiny generated bags: schema, sanity, report files, bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mirage_ros.cli import main
from mirage_ros.core.codec import DEFAULT_WEIGHTS
from mirage_ros.sim import SceneConfig, SyntheticSequence, write_bag

MEMS = ("mirage", "pixel_cloud", "latent_cloud_append")
CLASS_KEYS = {"psnr", "ssim", "psnr_covered", "coverage", "depth_abs_rel", "count"}
MEM_KEYS = {"recent", "revisit", "novel", "memory_bytes", "integrate_ms_p50", "predict_ms_p50"}


@pytest.fixture(scope="module")
def seq() -> SyntheticSequence:
    return SyntheticSequence(SceneConfig(seed=1, frames=30, width=64, height=48))


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory, seq: SyntheticSequence) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage, depth in [("mcap", "16UC1"), ("sqlite3", "32FC1"), ("rosbag1", "16UC1")]:
        path = root / f"{storage}_{depth}{'.bag' if storage == 'rosbag1' else ''}"
        write_bag(seq, path, storage=storage, depth_encoding=depth)
        out[storage] = path
    return out


def _eval(bag: Path | list[Path], out: Path, *extra: str) -> int:
    """Run the CLI; the untrained codec unless the test names weights (no codec quality here)."""
    bags = [bag] if isinstance(bag, Path) else bag
    weights = () if "--weights" in extra else ("--weights", "untrained")
    cmd = ["eval", *map(str, bags), "--out", str(out), "--device", "cpu", "--quiet"]
    return main([*cmd, *weights, *extra])


def _check_schema(m: dict[str, Any], references: bool = True) -> None:
    assert set(m["frames"]) == {"integrated", "recent", "revisit", "novel"}
    for name in MEMS:
        entry = m[name]
        if not references and name != "mirage":
            assert entry is None
            continue
        assert set(entry) >= MEM_KEYS
        assert entry["memory_bytes"] > 0
        for cls in ("recent", "revisit", "novel"):
            if m["frames"][cls] == 0:
                assert entry[cls] is None
            else:
                assert set(entry[cls]) >= CLASS_KEYS
                assert entry[cls]["count"] == m["frames"][cls]
    assert {"config", "device", "bag"} <= set(m)
    assert m["device"] == "cpu"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "rosbag1"])
def test_every_storage_and_depth_encoding_gives_a_full_report(tmp_path, bags, storage) -> None:
    out = tmp_path / "report"
    assert _eval(bags[storage], out) == 0
    m = json.loads((out / "metrics.json").read_text())
    _check_schema(m)
    held = m["frames"]["recent"] + m["frames"]["revisit"] + m["frames"]["novel"]
    assert m["frames"]["integrated"] + held == 30 and held == 6
    with (out / "frames.csv").open() as f:
        assert len(list(csv.DictReader(f))) == held
    page = (out / "index.html").read_text()
    shown = re.findall(r'src="([^"]+)"', page)
    assert "plots/psnr_over_time.png" in shown and "plots/memory_over_time.png" in shown
    assert any(s.startswith("grids/") for s in shown)
    assert all((out / s).is_file() for s in shown)
    assert "http" not in page  # self-contained: no external resources
    assert not (out / "_frames").exists()


def test_revisit_psnr_of_our_memory_on_a_static_scene_is_sane(tmp_path) -> None:
    seq = SyntheticSequence(SceneConfig(seed=1, frames=150, width=64, height=48))
    bag = tmp_path / "loop"
    write_bag(seq, bag)
    out = tmp_path / "r"
    assert _eval(bag, out, "--recent-window-s", "1.0") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["frames"]["revisit"] > 0
    # a static scene seen before: the covered pixels are predicted well by every memory
    # (measured ~26-30 dB with an untrained, PCA-initialised codec; a wrong pose gives < 15)
    for name in MEMS:
        assert m[name]["revisit"]["psnr_covered"] > 18.0
        assert m[name]["revisit"]["coverage"] > 0.5


def test_options_no_references_resolution_and_max_frames(tmp_path, bags) -> None:
    out = tmp_path / "o"
    args = ("--no-references", "--resolution", "32x24", "--max-frames", "20")
    assert _eval(bags["mcap"], out, *args, "--holdout-every", "4") == 0
    m = json.loads((out / "metrics.json").read_text())
    _check_schema(m, references=False)
    assert m["frames"]["integrated"] == 15 and m["config"]["resolution"] == "32x24"
    assert m["config"]["holdout_every"] == 4


def test_unbounded_reference_budget_lets_the_pixel_cloud_grow(tmp_path, bags) -> None:
    sizes = {}
    for budget in ("equal", "unbounded"):
        out = tmp_path / budget
        assert _eval(bags["mcap"], out, "--reference-budget", budget, "--max-frames", "12") == 0
        m = json.loads((out / "metrics.json").read_text())
        sizes[budget] = m["pixel_cloud"]["memory_bytes"]
        assert m["config"]["reference_budget"] == budget
    assert sizes["unbounded"] > sizes["equal"]


def _rewrite(src: Path, dst: Path, edit: Callable[[str, Any], Any]) -> Path:
    """Copy a rosbag2 bag message by message through ``edit(topic, msg) -> msg``."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    with (
        AnyReader([src], default_typestore=store) as reader,
        Writer(dst, version=Writer.VERSION_LATEST) as writer,
    ):
        conns = {
            c.id: writer.add_connection(c.topic, c.msgtype, typestore=store)
            for c in reader.connections
        }
        for c, t, raw in reader.messages():
            msg = edit(c.topic.lstrip("/"), reader.deserialize(raw, c.msgtype))
            writer.write(conns[c.id], t, store.serialize_cdr(msg, c.msgtype))
    return dst


def _color_encoding(topic: str, msg: Any) -> Any:
    if topic == "camera/color/image_raw":
        return dataclasses.replace(msg, encoding="yuv422")
    return msg


def _info_size(topic: str, msg: Any) -> Any:
    if topic == "camera/color/camera_info":
        return dataclasses.replace(msg, width=msg.width * 2)
    return msg


def _fails(capsys: pytest.CaptureFixture[str], bag: Any, out: Path, *extra: str) -> str:
    assert _eval(bag, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mirage eval: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_topic_lists_the_topics_that_exist(tmp_path, bags, capsys) -> None:
    err = _fails(capsys, bags["mcap"], tmp_path / "o", "--rgb-topic", "/cam/rgb")
    assert "'/cam/rgb' not found" in err and "/camera/color/image_raw" in err


def test_no_tf_path_names_the_frames_that_exist(tmp_path, bags, capsys) -> None:
    err = _fails(capsys, bags["rosbag1"], tmp_path / "o", "--fixed-frame", "world")
    assert "'world'" in err and "base_link" in err and "map" in err


def test_missing_empty_and_truncated_bags_fail_cleanly(tmp_path, bags, capsys) -> None:
    assert "does not exist" in _fails(capsys, tmp_path / "nope", tmp_path / "o")
    empty = tmp_path / "empty.bag"
    empty.write_bytes(b"")
    _fails(capsys, empty, tmp_path / "o")
    trunc = tmp_path / "trunc"
    write_bag(SyntheticSequence(SceneConfig(seed=1, frames=10, width=32, height=24)), trunc)
    mcap = next(trunc.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    _fails(capsys, trunc, tmp_path / "o")


def test_unsupported_encoding_is_named(tmp_path, bags, capsys) -> None:
    bad = _rewrite(bags["mcap"], tmp_path / "yuv", _color_encoding)
    assert "yuv422" in _fails(capsys, bad, tmp_path / "o")


def test_image_and_camera_info_size_mismatch_is_refused(tmp_path, bags, capsys) -> None:
    bad = _rewrite(bags["sqlite3"], tmp_path / "size", _info_size)
    err = _fails(capsys, bad, tmp_path / "o")
    assert "64" in err and "128" in err


def test_bad_options_fail_cleanly(tmp_path, bags, capsys) -> None:
    assert "resolution" in _fails(capsys, bags["mcap"], tmp_path / "o", "--resolution", "big")
    assert "not found" in _fails(capsys, bags["mcap"], tmp_path / "o", "--weights", "/nope.st")
    _fails(capsys, bags["mcap"], tmp_path / "o", "--device", "tpu")


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped codec weights")
def test_default_runs_with_the_shipped_weights(tmp_path, bags) -> None:
    out = tmp_path / "shipped"
    cmd = ["eval", str(bags["mcap"]), "--out", str(out), "--device", "cpu", "--quiet"]
    assert main([*cmd, "--max-frames", "10"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["codec"]["trained"] is True and m["codec"]["source"] == str(DEFAULT_WEIGHTS)
    _check_schema(m)


def test_a_bag_shorter_than_k_frames_reports_empty_classes(tmp_path, bags) -> None:
    out = tmp_path / "short"
    assert _eval(bags["mcap"], out, "--max-frames", "3") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["frames"] == {"integrated": 3, "recent": 0, "revisit": 0, "novel": 0}
    _check_schema(m)
    assert "No held-out frames" in (out / "index.html").read_text()
