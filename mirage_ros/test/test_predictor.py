"""Predictor: codec + memory glue (tiny model on CPU, the shipped weights where present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mirage_ros.core.codec import DEFAULT_WEIGHTS, Codec, CodecConfig, load_codec
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import CodecError, ShapeError
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.predictor import Predictor, rgb_to_tensor

TINY = CodecConfig(latent_channels=8, encoder_width=8, width=8, inner_width=8, head_channels=4)
W, H = 64, 48


def _camera(cam_x: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    f = 0.8 * W
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    T = np.eye(4)
    T[0, 3] = cam_x
    return K, T


def _wall(cam_x: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    K, _ = _camera()
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x = cam_x + (u - K[0, 2]) / K[0, 0] * 2.0
    y = (v - K[1, 2]) / K[1, 1] * 2.0
    rgb = np.stack([0.5 + 0.4 * np.sin(7 * x), 0.5 + 0.4 * np.cos(5 * y), 0.4 + 0 * x], axis=-1)
    return (rgb * 255).astype(np.uint8), np.full((H, W), 2.0, dtype=np.float32)


def _predictor(codec: Codec) -> Predictor:
    cfg = MemoryConfig(latent_channels=codec.config.latent_channels, device="cpu", max_memory_mb=8)
    return Predictor(codec, LatentSpatialMemory(cfg))


def test_predict_at_an_integrated_pose_is_covered_and_in_range() -> None:
    torch.manual_seed(0)
    pred = _predictor(Codec(TINY).eval())
    rgb, depth = _wall()
    K, T = _camera()
    stats = pred.observe(rgb, depth, K, T, 1_000)
    assert stats.cells_valid == (H // 4) * (W // 4)
    out = pred.predict(K, T, H, W)
    assert out.rgb.shape == (1, 3, H, W) and out.confidence.shape == (1, H, W)
    assert out.depth_m.shape == (1, H, W) and out.coverage.shape == (1, H, W)
    assert out.coverage_fraction[0] > 0.9
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1
    assert out.confidence.min() >= 0 and out.confidence.max() <= 1
    covered = out.coverage[0]
    assert torch.allclose(out.depth_m[0][covered], torch.tensor(2.0), atol=0.1)
    assert torch.isnan(out.depth_m[0][~covered]).all()
    assert set(out.timings_ms) >= {"render", "decode", "total"}


def test_batched_predict_equals_single_views() -> None:
    torch.manual_seed(0)
    pred = _predictor(Codec(TINY).eval())
    for i, x in enumerate((0.0, 0.2)):
        rgb, depth = _wall(x)
        K, T = _camera(x)
        pred.observe(torch.from_numpy(rgb).permute(2, 0, 1), depth, K, T, i)
    K, T0 = _camera(0.1)
    _, T1 = _camera(0.5)
    both = pred.predict(K, np.stack([T0, T1]), H, W)
    assert both.rgb.shape[0] == 2 and len(both.coverage_fraction) == 2
    for b, T in enumerate((T0, T1)):
        one = pred.predict(K, T, H, W)
        assert torch.allclose(one.rgb[0], both.rgb[b], atol=1e-5)
        assert torch.equal(one.coverage[0], both.coverage[b])
    assert both.coverage_fraction[1] < both.coverage_fraction[0]  # 0.5 m away sees new wall


def test_mismatched_codec_and_memory_are_refused() -> None:
    cfg = MemoryConfig(latent_channels=16, device="cpu", max_memory_mb=8)
    with pytest.raises(CodecError):
        Predictor(Codec(TINY), LatentSpatialMemory(cfg))
    mem = LatentSpatialMemory(MemoryConfig(latent_channels=8, device="cpu", max_memory_mb=8))
    mem.codec_id = "mirage-codec-v1-someoneelse"
    with pytest.raises(CodecError):
        Predictor(Codec(TINY), mem)


def test_bad_frames_raise_shape_error() -> None:
    pred = _predictor(Codec(TINY).eval())
    rgb, depth = _wall()
    K, T = _camera()
    with pytest.raises(ShapeError):
        pred.observe(rgb, depth[:-4], K, T, 0)
    with pytest.raises(ShapeError):
        rgb_to_tensor(np.zeros((H, W), dtype=np.uint8))
    with pytest.raises(ShapeError):
        pred.predict(K, T, 0, W)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights not built yet")
def test_shipped_weights_are_less_confident_in_holes() -> None:
    codec = load_codec(None, device="cpu")
    pred = _predictor(codec)
    rgb, depth = _wall()
    depth[:, W // 2 :] = 0.0  # the right half of the wall is never observed
    K, T = _camera()
    pred.observe(rgb, depth, K, T, 0)
    out = pred.predict(K, T, H, W)
    cov = out.coverage[0]
    assert cov.any() and (~cov).any()
    conf = out.confidence[0]
    assert conf[cov].mean() > conf[~cov].mean()


def test_a_fine_render_codec_also_renders_the_memory_at_twice_the_latent_resolution() -> None:
    import dataclasses

    torch.manual_seed(0)
    codec = Codec(dataclasses.replace(TINY, fine_render=True)).eval()
    pred = _predictor(codec)
    rgb, depth = _wall()
    K, T = _camera()
    pred.observe(rgb, depth, K, T, 1_000)
    sizes: list[tuple[int, int, int | None]] = []
    render = pred.memory.render

    def spy(K_r, T_r, h, w, splat_radius_px=None):  # type: ignore[no-untyped-def]
        sizes.append((h, w, splat_radius_px))
        return render(K_r, T_r, h, w, splat_radius_px)

    pred.memory.render = spy  # type: ignore[method-assign]
    out = pred.predict(K, T, H, W)
    cap = pred.memory.config.splat_radius_px  # the fine splats reach as far as the coarse ones
    assert sizes == [(H // 4, W // 4, None), (H // 2, W // 2, 2 * cap)]
    assert out.rgb.shape == (1, 3, H, W) and out.coverage_fraction[0] > 0.9
