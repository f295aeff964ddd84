"""Forgetting what moved: a removed box disappears; a static scene does not erode."""

from __future__ import annotations

import math

import torch
from core_scenes import intrinsics, look_at, raycast, surface_latents
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.memory import LatentSpatialMemory

ROOM = ((-3.0, -2.0, 0.0), (3.0, 2.0, 2.5))
BOX = ((0.5, -0.5, 0.0), (1.5, 0.5, 1.0))
H, W = 30, 40
K = intrinsics(H, W, 30.0)


def orbit(i: int, n: int = 16) -> torch.Tensor:
    a = 2 * math.pi * i / n
    return look_at(
        (-1.0 + 1.5 * math.cos(a), 1.2 * math.sin(a), 1.2), (1.5 * math.cos(a / 2), 0.0, 0.8)
    )


def integrate(mem: LatentSpatialMemory, T: torch.Tensor, boxes: list, stamp: int) -> int:
    d = raycast(K, T, H, W, boxes, ROOM)
    return mem.integrate(surface_latents(d, K, T, 4), d, K, T, stamp).voxels_carved


def test_removed_box_is_not_rendered_after_a_few_observations() -> None:
    mem = LatentSpatialMemory(MemoryConfig(device="cpu", latent_channels=4))
    for i in range(16):
        integrate(mem, orbit(i), [BOX], i)
    view = look_at((-2.0, 0.0, 1.2), (2.0, 0.0, 0.8))
    with_box = raycast(K, view, H, W, [BOX], ROOM)
    truth = raycast(K, view, H, W, [], ROOM)
    box_px = with_box < truth - 0.3
    before = mem.render(K, view, H, W).depth_m[0]
    assert float((before[box_px] < truth[box_px] - 0.3).float().mean()) > 0.9  # box is there
    for i in range(4):  # the box is gone; four looks from nearby poses
        T = look_at((-2.0, 0.2 * (i % 2), 1.2), (2.0, 0.0, 0.8))
        integrate(mem, T, [], 100 + i)
    after = mem.render(K, view, H, W).depth_m[0]
    ghost = (after < truth - 0.3) & box_px
    assert int(ghost.sum()) <= 0.02 * int(box_px.sum())
    assert mem.carved_total > 0


def test_static_scene_does_not_erode() -> None:
    mem = LatentSpatialMemory(MemoryConfig(device="cpu", latent_channels=4))
    for i in range(16):  # includes grazing views of floor, walls and box sides
        integrate(mem, orbit(i), [BOX], i)
    n0 = mem.num_voxels
    carved = sum(integrate(mem, orbit(i), [BOX], 100 + i) for i in range(32))
    assert carved == 0 and mem.carved_total == 0
    assert mem.num_voxels >= n0


def test_grazing_floor_views_do_not_carve_the_floor() -> None:
    mem = LatentSpatialMemory(MemoryConfig(device="cpu", latent_channels=4))
    for i in range(8):  # camera 0.3 m above the floor looking almost along it
        T = look_at((-2.5, -1.0 + 0.25 * i, 0.3), (2.5, 0.0, 0.1))
        assert integrate(mem, T, [], i) == 0


def test_carving_off_keeps_moved_objects() -> None:
    mem = LatentSpatialMemory(MemoryConfig(device="cpu", latent_channels=4, carve_free_space=False))
    for i in range(8):
        integrate(mem, orbit(i, 8), [BOX], i)
    for i in range(4):
        assert integrate(mem, look_at((-2.0, 0.0, 1.2), (2.0, 0.0, 0.8)), [], 100 + i) == 0
