"""Metrics: PSNR/SSIM/depth abs-rel/Spearman invariants and agreement with references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mirage_ros.core.errors import ShapeError
from mirage_ros.evaluation.metrics import (
    depth_abs_rel,
    psnr,
    spearman,
    ssim,
    ssim_map,
    ssim_reference,
)


def _img(seed: int, h: int = 24, w: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3))


def test_psnr_of_identical_images_is_capped_and_of_a_known_mse_is_exact() -> None:
    a = _img(0)
    assert psnr(a, a) == 100.0
    b = np.clip(a + 0.1, 0, 1)
    mse = float(np.mean((a - b) ** 2))
    assert psnr(b, a) == pytest.approx(-10 * math.log10(mse))


def test_psnr_mask_selects_pixels_and_empty_mask_is_nan() -> None:
    a = _img(1)
    b = a.copy()
    b[:, :10] = 0.0  # wrong only on the left half
    mask = np.zeros(a.shape[:2], dtype=bool)
    mask[:, 10:] = True
    assert psnr(b, a, mask) == 100.0
    assert psnr(b, a) < 30.0
    assert math.isnan(psnr(b, a, np.zeros_like(mask)))


def test_channel_first_tensors_and_channel_last_arrays_agree() -> None:
    a, b = _img(2), _img(3)
    ta, tb = torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(b).permute(2, 0, 1)
    assert psnr(ta, tb) == pytest.approx(psnr(a, b))
    assert ssim(ta, tb) == pytest.approx(ssim(a, b))


def test_ssim_of_identical_images_is_one_and_drops_with_noise() -> None:
    a = _img(4)
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + np.random.default_rng(5).normal(0, 0.2, a.shape), 0, 1)
    assert ssim(noisy, a) < 0.9


@pytest.mark.parametrize(("h", "w"), [(16, 14), (5, 7)])
def test_fast_ssim_map_agrees_with_the_slow_reference(h: int, w: int) -> None:
    a, b = _img(6, h, w), _img(7, h, w)
    assert np.allclose(ssim_map(a, b), ssim_reference(a, b), atol=1e-5)


def test_ssim_agrees_with_scikit_image_gaussian_ssim() -> None:
    skm = pytest.importorskip("skimage.metrics")
    a, b = _img(8, 40, 36), np.clip(_img(8, 40, 36) + _img(9, 40, 36) * 0.3, 0, 1)
    want = skm.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1.0, channel_axis=-1,
    )  # fmt: skip
    assert ssim(a, b) == pytest.approx(want, abs=1e-5)


def test_ssim_with_a_full_mask_is_the_full_map_mean() -> None:
    a, b = _img(10), _img(11)
    assert ssim(a, b, np.ones(a.shape[:2], bool)) == pytest.approx(ssim_map(a, b).mean())


def test_depth_abs_rel_ignores_unknown_depth_and_is_scale_relative() -> None:
    real = np.full((4, 5), 2.0)
    pred = real * 1.1
    pred[0, 0] = np.nan
    real[1, 1] = 0.0
    assert depth_abs_rel(pred, real) == pytest.approx(0.1)
    assert depth_abs_rel(pred * 10, real * 10) == pytest.approx(0.1)
    assert math.isnan(depth_abs_rel(np.full((2, 2), np.nan), np.ones((2, 2))))


def test_spearman_is_rank_based_and_handles_ties_and_constants() -> None:
    x = np.arange(20.0)
    assert spearman(x, np.exp(x / 3)) == pytest.approx(1.0)
    assert spearman(x, -(x**3)) == pytest.approx(-1.0)
    assert math.isnan(spearman(x, np.ones_like(x)))
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(12)
    a, b = rng.integers(0, 5, 50).astype(float), rng.random(50)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_shape_mismatches_raise_shape_error() -> None:
    with pytest.raises(ShapeError):
        psnr(_img(0, 4, 4), _img(0, 4, 5))
    with pytest.raises(ShapeError):
        ssim(_img(0, 4, 4), _img(0, 4, 4), np.ones((3, 3), bool))
    with pytest.raises(ShapeError):
        depth_abs_rel(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ShapeError):
        spearman([1.0, 2.0], [1.0])
