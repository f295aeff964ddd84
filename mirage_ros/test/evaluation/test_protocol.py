"""The held-out protocol: what is integrated, classes, equal-memory budget, determinism."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from mirage_ros.core.codec import Codec
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ConfigError
from mirage_ros.evaluation.protocol import CLASSES, MEMORIES, EvalConfig, Evaluator, resize_frame
from mirage_ros.sim import SceneConfig, SyntheticSequence

N = 20


@pytest.fixture(scope="module")
def frames() -> list:
    return list(SyntheticSequence(SceneConfig(seed=3, frames=N, width=48, height=36)))


def _codec() -> Codec:
    torch.manual_seed(0)
    return Codec()


def _run(frames: list, **kw: object) -> Evaluator:
    cfg = EvalConfig(memory=MemoryConfig(device="cpu"), **kw)  # type: ignore[arg-type]
    ev = Evaluator(cfg, _codec())
    for i, f in enumerate(frames):
        ev.step(i, f.stamp_ns, f.rgb, f.depth_m, f.K, f.T_world_camera)
    return ev


def test_every_kth_frame_is_held_out_and_never_integrated(frames) -> None:
    ev = _run(frames, holdout_every=5)
    assert [r.index for r in ev.records] == [4, 9, 14, 19]
    assert ev.integrated == N - 4
    assert ev.predictor.memory.frames_integrated == N - 4
    rows = ev.timeline
    for r in ev.records:  # a held-out step changes no memory
        before, at = rows[r.index - 1], rows[r.index]
        assert all(before[m] == at[m] for m in MEMORIES)


def test_frames_right_after_integration_are_recent_and_metrics_are_sane(frames) -> None:
    ev = _run(frames)
    s = ev.summary()
    assert s["frames"]["recent"] == len(ev.records)
    for m in MEMORIES:
        e = s[m]["recent"]
        assert e["count"] == len(ev.records)
        assert 0.0 < e["coverage"] <= 1.0
        assert 5.0 < e["psnr"] < 100.0
        assert -1.0 <= e["ssim"] <= 1.0
        assert s[m]["memory_bytes"] > 0
        assert s[m]["revisit"] is None and s[m]["novel"] is None


def test_a_view_of_unseen_space_is_novel(frames) -> None:
    cfg = EvalConfig(memory=MemoryConfig(device="cpu"), holdout_every=2)
    ev = Evaluator(cfg, _codec())
    f = frames[0]
    ev.step(0, f.stamp_ns, f.rgb, f.depth_m, f.K, f.T_world_camera)
    T_away = f.T_world_camera.copy()
    T_away[:3, :3] = T_away[:3, :3] @ np.diag([-1.0, 1.0, -1.0])  # turn around (yaw 180 deg)
    rec = ev.step(1, f.stamp_ns + 1, f.rgb, f.depth_m, f.K, T_away)
    assert rec is not None and rec.cls == "novel" and rec.coverage_fraction < 0.2


def test_old_content_is_a_revisit_when_the_window_is_short(frames) -> None:
    ev = _run(frames, recent_window_s=0.0)
    assert {r.cls for r in ev.records} <= {"revisit", "novel"}
    assert all(r.median_age_s > 0 for r in ev.records if r.cls == "revisit")


def test_equal_budget_keeps_the_pixel_cloud_within_our_bytes(frames) -> None:
    equal = _run(frames)
    assert all(row["pixel_cloud"] <= row["mirage"] for row in equal.timeline)
    unbounded = _run(frames, reference_budget="unbounded")
    assert unbounded.timeline[-1]["pixel_cloud"] > equal.timeline[-1]["pixel_cloud"]


def test_same_frames_give_identical_results(frames) -> None:
    a, b = _run(frames[:10]), _run(frames[:10])
    for ra, rb in zip(a.records, b.records, strict=True):
        for m in MEMORIES:
            for key, va in ra.metrics[m].items():
                if key != "predict_ms":
                    vb = rb.metrics[m][key]
                    assert va == vb or (math.isnan(va) and math.isnan(vb))


def test_without_references_only_our_memory_runs(frames) -> None:
    ev = _run(frames[:10], references=False)
    s = ev.summary()
    assert ev.memories == ("mirage",)
    assert s["pixel_cloud"] is None and s["latent_cloud_append"] is None
    assert set(ev.records[0].metrics) == {"mirage"}


def test_resize_scales_intrinsics_and_keeps_depth_values(frames) -> None:
    f = frames[0]
    rgb, depth, K = resize_frame(f.rgb, f.depth_m, f.K, 24, 18)
    assert rgb.shape == (18, 24, 3) and rgb.dtype == np.uint8 and depth.shape == (18, 24)
    assert np.isin(depth, f.depth_m).all()  # nearest: no blended depths across edges
    assert K[0, 0] == pytest.approx(f.K[0, 0] / 2)
    assert K[0, 2] == pytest.approx((f.K[0, 2] + 0.5) / 2 - 0.5)


@pytest.mark.parametrize(
    "kw",
    [
        {"holdout_every": 1},
        {"holdout_run": 0},
        {"recent_window_s": -1.0},
        {"novel_coverage": 1.5},
        {"reference_budget": "half"},
    ],
)
def test_invalid_config_is_refused(kw: dict) -> None:
    with pytest.raises(ConfigError):
        EvalConfig(**kw)


def test_classes_are_the_three_of_the_protocol() -> None:
    assert CLASSES == ("recent", "revisit", "novel")


def test_held_out_runs_follow_the_run_length(frames) -> None:
    ev = _run(frames[:12], holdout_every=2, holdout_run=3)
    assert [r.index for r in ev.records] == [3, 4, 5, 9, 10, 11]
    assert ev.integrated == 6
    # the memory is frozen during a run, so what the run's frames see only gets older
    ages = [r.median_age_s for r in ev.records[:3]]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(ages))
    assert ages[-1] > ages[0]


def test_depth_breakdown_bins_covered_pixels_by_true_depth() -> None:
    from mirage_ros.evaluation.protocol import DEPTH_BINS_M, _by_depth, _depth_sums

    depth = np.array([[0.5, 0.5, 1.2, 7.0], [0.0, np.nan, 2.2, 7.5]], dtype=np.float32)
    mask = np.array([[True, True, True, True], [True, True, False, True]])
    mask &= np.isfinite(depth) & (depth > 0)  # as the protocol does: no true depth, no bin
    sq = np.zeros((2, 4, 3), dtype=np.float32)
    sq[:, :, :] = np.array([[0.01, 0.01, 0.001, 0.0001], [9, 9, 9, 0.0001]])[..., None]
    smap = np.array([[0.9, 0.7, 0.5, 0.2], [0, 0, 0, 0.4]], dtype=np.float32)
    bins = np.digitize(depth, DEPTH_BINS_M[1:-1])
    bd = _by_depth(_depth_sums(bins, mask, sq, smap))
    assert bd[0]["depth_m"] == [0.0, 1.0] and bd[-1]["depth_m"] == [6.0, None]
    assert [b["pixels"] for b in bd] == [2, 1, 0, 0, 0, 0, 0, 2]
    assert bd[0]["psnr_covered"] == pytest.approx(20.0) and bd[0]["ssim_covered"] == pytest.approx(
        0.8
    )
    assert bd[1]["psnr_covered"] == pytest.approx(30.0) and bd[1]["ssim_covered"] == pytest.approx(
        0.5
    )
    assert bd[2]["psnr_covered"] is None and bd[2]["ssim_covered"] is None
    assert bd[-1]["psnr_covered"] == pytest.approx(40.0) and bd[-1][
        "ssim_covered"
    ] == pytest.approx(0.3)


def test_summary_breaks_every_class_down_by_depth(frames) -> None:
    ev = _run(frames, holdout_every=4)
    s = ev.summary()
    h, w = frames[0].depth_m.shape
    for name in MEMORIES:
        for cls in CLASSES:
            if s[name][cls] is None:
                continue
            bd = s[name][cls]["by_depth"]
            views = s[name][cls]["count"]
            pixels = sum(b["pixels"] for b in bd)
            assert 0 < pixels <= views * h * w
            assert all(b["psnr_covered"] is not None for b in bd if b["pixels"])
