"""The near level: cells observed near the camera go into finer voxels, the rest stay coarse."""

from __future__ import annotations

import pytest
import torch
from core_scenes import intrinsics, surface_latents
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ConfigError
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.voxel_hash import KEY_OFFSET, key_levels, pack_keys, unpack_keys

H, W = 24, 32
K = intrinsics(H, W, 96.0)  # a cell spans 1.25 cm at 1.2 m: several per voxel


def two_walls() -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (h, w): the left half a wall 1.2 m away, the right half one 5.3 m away; T = I."""
    d = torch.full((H, W), 1.2, dtype=torch.float64)
    d[:, W // 2 :] = 5.3
    return d, torch.eye(4, dtype=torch.float64)


def levels_and_depths(cfg: MemoryConfig) -> tuple[torch.Tensor, torch.Tensor, LatentSpatialMemory]:
    mem = LatentSpatialMemory(cfg)
    d, T = two_walls()
    mem.integrate(surface_latents(d, K, T, cfg.latent_channels), d, K, T, 0)
    live = mem._live_slots()
    return key_levels(mem.keys[live]), mem.positions[live, 2], mem


def test_near_cells_go_into_near_voxels_and_far_ones_stay_coarse() -> None:
    cfg = MemoryConfig(device="cpu", latent_channels=4, near_voxel_size_m=0.025, near_depth_m=3.0)
    levels, z, mem = levels_and_depths(cfg)
    assert bool((levels[z < 3.0] == 1).all()) and bool((levels[z > 3.0] == 0).all())
    assert int((levels == 1).sum()) > 0 and int((levels == 0).sum()) > 0
    # each voxel's mean position lies inside its own cube, of its level's edge
    live = mem._live_slots()
    ijk = unpack_keys(mem.keys[live]).double()
    edge = torch.where(levels == 1, 0.025, 0.05).double()[:, None]
    pos = mem.positions[live].double()
    assert bool(((pos >= ijk * edge - 1e-6) & (pos <= (ijk + 1) * edge + 1e-6)).all())


@pytest.mark.parametrize(
    "near",
    [
        {"near_voxel_size_m": 0.0},  # off
        {"near_voxel_size_m": 0.05},  # not finer than voxel_size_m
        {"near_voxel_size_m": 0.08},  # coarser: ignored, not an error
        {"near_depth_m": 0.0},  # nothing is near
    ],
)
def test_one_level_when_the_near_level_is_off(near: dict[str, float]) -> None:
    cfg = MemoryConfig(device="cpu", latent_channels=4, voxel_size_m=0.05, **near)  # type: ignore[arg-type]
    assert not cfg.has_near_level and cfg.level_sizes_m() == (0.05, 0.05)
    levels, _, _ = levels_and_depths(cfg)
    assert bool((levels == 0).all())


def test_the_far_field_is_keyed_as_with_one_level() -> None:
    on, _, mem_on = levels_and_depths(MemoryConfig(device="cpu", latent_channels=4))
    _, z_off, mem_off = levels_and_depths(
        MemoryConfig(device="cpu", latent_channels=4, near_voxel_size_m=0.0)
    )
    keys_on = mem_on.keys[mem_on._live_slots()]
    keys_off = mem_off.keys[mem_off._live_slots()]
    assert set(keys_on[on == 0].tolist()) == set(keys_off[z_off > 3.0].tolist())
    assert mem_on.num_voxels > mem_off.num_voxels  # the near wall in 4x as many voxels


@pytest.mark.parametrize("bad", [{"near_voxel_size_m": -0.01}, {"near_depth_m": -1.0}])
def test_bad_near_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        MemoryConfig(**bad)  # type: ignore[arg-type]


def test_keys_carry_the_level_and_never_collide() -> None:
    ijk = torch.tensor([[0, 0, 0], [-1, 2, -3], [KEY_OFFSET - 1, -KEY_OFFSET, 7]])
    k0, k1 = pack_keys(ijk), pack_keys(ijk, 1)
    mixed = pack_keys(ijk, torch.tensor([0, 1, 0]))
    assert bool((k0 >= 0).all()) and bool((k1 >= 0).all())
    assert torch.equal(unpack_keys(k1), ijk) and torch.equal(unpack_keys(k0), ijk)
    assert key_levels(k0).tolist() == [0, 0, 0] and key_levels(k1).tolist() == [1, 1, 1]
    assert key_levels(mixed).tolist() == [0, 1, 0]
    assert not set(k0.tolist()) & set(k1.tolist())
