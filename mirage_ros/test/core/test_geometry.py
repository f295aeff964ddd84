"""Geometry: input checks, pose inverse, pixel-centre-correct scaling, stride depth, keys."""

from __future__ import annotations

import pytest
import torch
from core_scenes import intrinsics, look_at
from mirage_ros.core.errors import PoseError, ShapeError
from mirage_ros.core.geometry import (
    depth_at_stride,
    invert_pose,
    project,
    scale_intrinsics,
    transform_points,
    unproject,
    validate_intrinsics,
    validate_pose,
)
from mirage_ros.core.voxel_hash import KEY_OFFSET, pack_keys, unpack_keys


@pytest.mark.parametrize(
    "K",
    [
        torch.eye(4),
        torch.tensor([[0.0, 0, 1], [0, 1, 1], [0, 0, 1]]),
        torch.tensor([[1.0, 0.5, 1], [0, 1, 1], [0, 0, 1]]),
        torch.tensor([[1.0, 0, float("nan")], [0, 1, 1], [0, 0, 1]]),
        torch.tensor([[1.0, 0, 1], [0, 1, 1], [0, 1, 1]]),
    ],
)
def test_bad_intrinsics_raise_shape_error(K: torch.Tensor) -> None:
    with pytest.raises(ShapeError):
        validate_intrinsics(K)


def test_bad_poses_raise() -> None:
    with pytest.raises(ShapeError):
        validate_pose(torch.eye(3))
    T = torch.eye(4)
    T[0, 3] = float("inf")
    with pytest.raises(PoseError):
        validate_pose(T)
    with pytest.raises(PoseError, match="reflection"):
        validate_pose(torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0])))
    with pytest.raises(PoseError, match="orthonormal"):
        validate_pose(torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0])))
    T = torch.eye(4)
    T[3, 0] = 1.0
    with pytest.raises(PoseError, match="last row"):
        validate_pose(T)


def test_pose_times_its_inverse_is_identity() -> None:
    T = look_at((1.0, -2.0, 0.5), (3.0, 1.0, 0.0))
    assert torch.allclose(T @ invert_pose(T), torch.eye(4, dtype=torch.float64), atol=1e-12)


def test_unproject_then_project_returns_pixel_grid() -> None:
    K = intrinsics(6, 8, 5.0)
    depth = torch.rand(6, 8, dtype=torch.float64) + 0.5
    pts = unproject(depth, K)
    T = look_at((0.1, 0.2, 0.3), (1.0, 0.0, 0.0))
    back = transform_points(invert_pose(T), transform_points(T, pts))
    uv, z = project(back, K)
    assert torch.allclose(z, depth)
    assert torch.allclose(uv[..., 0], torch.arange(8, dtype=torch.float64).expand(6, 8))
    assert torch.allclose(uv[..., 1], torch.arange(6, dtype=torch.float64)[:, None].expand(6, 8))


def test_scale_intrinsics_maps_block_centres_to_cell_centres() -> None:
    K = intrinsics(48, 64, 40.0)
    Ks = scale_intrinsics(K, 0.25, 0.25)
    # the ray through the centre of latent cell (i, j) passes through full-res (4j+1.5, 4i+1.5)
    j, i = 5.0, 3.0
    ray_s = ((j - Ks[0, 2]) / Ks[0, 0], (i - Ks[1, 2]) / Ks[1, 1])
    ray_f = ((4 * j + 1.5 - K[0, 2]) / K[0, 0], (4 * i + 1.5 - K[1, 2]) / K[1, 1])
    assert torch.allclose(torch.stack(ray_s), torch.stack(ray_f))


def test_depth_at_stride_is_block_median_and_zero_where_invalid() -> None:
    d = torch.arange(16, dtype=torch.float32).reshape(4, 4) + 1.0
    d[0:2, 2:4] = float("nan")
    out = depth_at_stride(d, 2)
    assert out.shape == (2, 2)
    assert out[0, 1] == 0.0
    assert out[0, 0] == torch.tensor([1.0, 2.0, 5.0, 6.0]).median()
    assert torch.equal(depth_at_stride(d, 1), torch.nan_to_num(d, nan=0.0))


def test_depth_at_stride_of_a_plane_lies_on_the_plane() -> None:
    K = intrinsics(32, 32, 30.0)
    depth = torch.full((32, 32), 2.0)
    pts = unproject(depth_at_stride(depth, 4), scale_intrinsics(K, 0.25, 0.25).float())
    assert torch.allclose(pts[..., 2], torch.full((8, 8), 2.0))


def test_keys_round_trip_including_negative_coordinates() -> None:
    ijk = torch.tensor([[0, 0, 0], [-1, 2, -3], [KEY_OFFSET - 1, -KEY_OFFSET, 7]])
    keys = pack_keys(ijk)
    assert bool((keys >= 0).all())
    assert torch.equal(unpack_keys(keys), ijk)
