"""Reference memories: pixel RGB cloud (with byte budget) and append-only latent cloud."""

from __future__ import annotations

import pytest
import torch
from core_scenes import intrinsics, look_at, raycast, surface_latents
from mirage_ros.core.baselines import AppendLatentCloud, PixelPointCloud, PointCloudConfig
from mirage_ros.core.errors import ConfigError, ShapeError

ROOM = ((-3.0, -2.0, 0.0), (3.0, 2.0, 2.5))
H, W = 24, 32
K = intrinsics(H, W, 24.0)
T = look_at((-1.0, 0.0, 1.2), (2.0, 0.3, 0.7))


def rgb_frame() -> tuple[torch.Tensor, torch.Tensor]:
    d = raycast(K, T, H, W, [], ROOM)
    rgb = (surface_latents(d, K, T, 3) + 1.0) / 2.0
    return rgb, d


def test_pixel_cloud_keeps_every_valid_pixel_and_renders_it_back() -> None:
    cloud = PixelPointCloud(PointCloudConfig(device="cpu", splat_radius_px=0))
    rgb, d = rgb_frame()
    d[0, :] = 0.0
    st = cloud.integrate(rgb, d, K, T, 0)
    assert st.cells_valid == cloud.num_points == (H - 1) * W
    assert cloud.memory_bytes == cloud.num_points * (12 + 3 + 4) + 8
    r = cloud.render(K, T, H, W)
    valid = d > 0
    assert torch.equal(r.coverage[0], valid)
    assert torch.allclose(r.latents[0][:, valid], rgb[:, valid], atol=1 / 255)


def test_pixel_cloud_grows_linearly_with_frames() -> None:
    cloud = PixelPointCloud(PointCloudConfig(device="cpu"))
    rgb, d = rgb_frame()
    for i in range(3):
        cloud.integrate(rgb, d, K, T, i)
    assert cloud.num_points == 3 * H * W


def test_pixel_cloud_downsamples_to_a_budget_the_caller_can_change() -> None:
    cloud = PixelPointCloud(PointCloudConfig(device="cpu"))
    rgb, d = rgb_frame()
    cloud.integrate(rgb, d, K, T, 0)
    full = cloud.memory_bytes
    cloud.max_bytes = full // 4
    st = cloud.integrate(rgb, d, K, T, 1)
    assert cloud.memory_bytes <= full // 4 and st.voxels_evicted > 0
    assert cloud.downsample_m is not None
    r = cloud.render(K, T, H, W)
    assert float(r.coverage.float().mean()) > 0.5  # footprint grows with the down-sampling


def test_append_cloud_appends_every_cell_and_nearest_wins() -> None:
    cloud = AppendLatentCloud(PointCloudConfig(channels=4, feature_dtype="float32", device="cpu",
                                               splat_radius_px=0))  # fmt: skip
    far = torch.full((H, W), 3.0)
    near = torch.full((H, W), 1.0)
    cloud.integrate(torch.ones(4, H, W), far, K, torch.eye(4), 0)
    cloud.integrate(torch.full((4, H, W), 2.0), near, K, torch.eye(4), 10**9)
    assert cloud.num_points == 2 * H * W
    r = cloud.render(K, torch.eye(4), H, W)
    assert bool(r.coverage.all()) and bool((r.latents == 2.0).all())
    assert torch.allclose(r.depth_m, torch.ones_like(r.depth_m))
    # age is relative to the newest frame
    assert bool((r.age_s == 0).all())


def test_baselines_refuse_bad_input_and_config() -> None:
    with pytest.raises(ConfigError):
        AppendLatentCloud(PointCloudConfig(channels=4, feature_dtype="uint8", device="cpu"))
    with pytest.raises(ConfigError):
        PointCloudConfig(channels=0)
    cloud = PixelPointCloud(PointCloudConfig(device="cpu"))
    with pytest.raises(ShapeError):
        cloud.integrate(torch.zeros(4, H, W), torch.ones(H, W), K, T, 0)
