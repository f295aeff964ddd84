"""`mirage bench` quick mode: writes a complete JSON report for the three memories."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from mirage_ros.core.errors import ConfigError

from mirage_ros import bench


def _args(tmp_path: Path, **kw: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--device", "cpu", "--out", str(tmp_path / "b.json"), "--threads", "1"]
    )
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_quick_bench_writes_all_memories_and_ratios(tmp_path: Path) -> None:
    args = _args(tmp_path, quick=True, frames=12, lap_frames=6, channels=4, scaling_voxels="")
    args.resolution = "64x48"
    assert bench.run(args) == 0
    report = json.loads((tmp_path / "b.json").read_text())
    assert set(report["memories"]) == {"ours", "append_latent_cloud", "pixel_cloud"}
    for m in report["memories"].values():
        assert m["integrate_ms"]["count"] > 0
        assert {"640x480", "320x240", "batched16_640x480"} <= set(m["render_ms"])
        assert m["bytes_curve"][-1]["frames"] == 12
    assert report["ratios_at_final_frames"]["pixel_cloud_over_ours"] > 1.0
    assert "4" in report["codec"]["skipped"]  # the shipped codec has 16 channels, not 4


def test_bench_times_the_shipped_codec_on_our_memory(tmp_path: Path) -> None:
    args = _args(tmp_path, quick=True, frames=8, lap_frames=8, channels=16, scaling_voxels="")
    args.resolution = "64x48"
    assert bench.run(args) == 0
    codec = json.loads((tmp_path / "b.json").read_text())["codec"]
    assert codec["codec_id"].startswith("mirage-codec-v")
    for size in ("640x480", "320x240"):
        assert codec[size]["decode_ms"]["count"] == 2  # quick: two views
        assert codec[size]["render_for_codec_ms"]["p50"] > 0
        assert "decode_cuda_graph_ms" not in codec[size]  # CPU: no graphs
    args = _args(tmp_path, quick=True, frames=4, lap_frames=4, channels=16, scaling_voxels="")
    args.no_codec, args.resolution = True, "64x48"
    assert bench.run(args) == 0
    assert json.loads((tmp_path / "b.json").read_text())["codec"] == {"skipped": "--no-codec"}


def test_bench_stream_revisits_the_same_places() -> None:
    s = bench.BenchStream(32, 24, 4, 4, lap_frames=10, device=torch.device("cpu"))
    a, b = s.frame(3), s.frame(13)  # same lap position, one lap later
    assert torch.allclose(a["T"][:3, :3], b["T"][:3, :3])
    assert float((a["T"][:3, 3] - b["T"][:3, 3]).norm()) < 0.5
    assert a["latents"].shape == (4, 6, 8) and a["depth_latent"].shape == (6, 8)
    assert bool(torch.isfinite(a["depth"]).all())


def test_prefilled_memory_holds_the_requested_voxels_and_renders() -> None:
    from mirage_ros.core.config import MemoryConfig

    cfg = MemoryConfig(device="cpu", latent_channels=4)
    mem = bench.prefilled_memory(cfg, 3000)
    assert mem.num_voxels == 3000 and mem.memory_bytes <= mem.budget_bytes
    s = bench.BenchStream(32, 24, 4, 4, lap_frames=10, device=torch.device("cpu"))
    assert bool(mem.render(s.K_latent, s.pose(0), 6, 8).coverage.any())


def test_bench_refuses_bad_resolution(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        bench.run(_args(tmp_path, resolution="wide"))


@pytest.mark.gpu
def test_bench_times_the_graphed_decode_on_cuda(tmp_path: Path) -> None:
    args = _args(tmp_path, quick=True, frames=8, lap_frames=8, channels=16, scaling_voxels="")
    args.device, args.resolution = "cuda", "64x48"
    assert bench.run(args) == 0
    codec = json.loads((tmp_path / "b.json").read_text())["codec"]
    for size in ("640x480", "320x240"):
        assert codec[size]["decode_cuda_graph_ms"]["count"] == 10  # 2 views, 5 times each
