"""The fast memory agrees with the slow obvious reference (voxels, fusion, carving, render)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from core_scenes import intrinsics, look_at, raycast, surface_latents
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.reference import ReferenceLatentMemory
from mirage_ros.core.voxel_hash import key_levels, unpack_keys

# surfaces off the voxel grid: a wall exactly on a voxel boundary would make the float32 and
# float64 paths pick different (equally right) voxels
ROOM = ((-3.013, -2.027, -0.011), (3.031, 2.017, 2.513))
BOX = ((0.517, -0.523, -0.011), (1.529, 0.511, 1.013))
H, W = 15, 20
K = intrinsics(H, W, 16.0)


def pose(i: int) -> torch.Tensor:
    a = 2 * math.pi * i / 6
    return look_at((-1.0 + math.cos(a), 0.8 * math.sin(a), 1.234), (1.2, 0.0, 0.6))


def run_both(
    cfg: MemoryConfig, remove_box_after: int = 99
) -> tuple[LatentSpatialMemory, ReferenceLatentMemory]:
    fast, ref = LatentSpatialMemory(cfg), ReferenceLatentMemory(cfg)
    for i in range(8):
        T = pose(i) if i < remove_box_after else look_at((-2.0, 0.1 * i, 1.234), (2.0, 0.0, 0.7))
        d = raycast(K, T, H, W, [BOX] if i < remove_box_after else [], ROOM)
        d[0, 0] = float("nan")
        lat = surface_latents(d, K, T, cfg.latent_channels)
        fast.integrate(lat, d, K, T, i)
        ref.integrate(lat, d, K, T, i)
    return fast, ref


def key_tuples(keys: torch.Tensor) -> list[tuple[int, ...]]:
    """The reference's (level, i, j, k) of fast keys."""
    rows = torch.cat([key_levels(keys)[:, None], unpack_keys(keys)], dim=1)
    return [tuple(k) for k in rows.tolist()]


@pytest.fixture(
    params=[(True, 0.0), (False, 0.0), (True, 0.05), (False, 0.05)],
    ids=["carving", "no-carving", "carving-near-level", "no-carving-near-level"],
)
def pair(request: pytest.FixtureRequest) -> tuple[LatentSpatialMemory, ReferenceLatentMemory]:
    carve, near = request.param
    cfg = MemoryConfig(
        device="cpu", latent_channels=3, latent_dtype="float32", voxel_size_m=0.1,
        carve_free_space=carve, max_weight=6.0, carve_decrement=3.0,
        near_voxel_size_m=near, near_depth_m=1.8,
    )  # fmt: skip
    return run_both(cfg, remove_box_after=5)


def test_same_voxels_with_same_fused_values(
    pair: tuple[LatentSpatialMemory, ReferenceLatentMemory],
) -> None:
    fast, ref = pair
    live = fast._live_slots()
    fast_keys = set(key_tuples(fast.keys[live]))
    ref_keys = set(ref.voxels)
    assert len(fast_keys ^ ref_keys) <= 0.01 * len(ref_keys)
    if fast.config.has_near_level:  # both levels are exercised
        assert {k[0] for k in ref_keys} == {0, 1}
    by_key = {k: int(s) for k, s in zip(key_tuples(fast.keys[live]), live.tolist(), strict=True)}
    for key in fast_keys & ref_keys:
        s, v = by_key[key], ref.voxels[key]
        assert float(fast.weights[s]) == pytest.approx(v.weight, abs=1e-4)
        np.testing.assert_allclose(fast.latents[s].numpy(), v.latent, atol=1e-4)
        np.testing.assert_allclose(fast.positions[s].numpy(), v.position, atol=1e-4)
        np.testing.assert_allclose(fast.normals[s].float().numpy(), v.normal, atol=2e-3)  # float16


def test_renders_agree(pair: tuple[LatentSpatialMemory, ReferenceLatentMemory]) -> None:
    fast, ref = pair
    for i in range(3):
        T = look_at((-1.5 + 0.5 * i, 0.3, 1.0), (2.0, -0.2 * i, 0.5))
        rf = fast.render(K, T, H, W)
        rr = ref.render(K, T, H, W)
        cov_f, cov_r = rf.coverage[0].numpy(), rr.coverage
        assert (cov_f != cov_r).mean() <= 0.02
        both = cov_f & cov_r
        depth_ok = np.abs(rf.depth_m[0].numpy() - rr.depth_m) < 1e-4
        assert depth_ok[both].mean() >= 0.98
        sel = both & depth_ok
        np.testing.assert_allclose(rf.latents[0].numpy()[:, sel], rr.latents[:, sel], atol=1e-4)
        np.testing.assert_allclose(rf.weight[0].numpy()[sel], rr.weight[sel], atol=1e-4)
        off_f = rf.offset[0].numpy()
        np.testing.assert_allclose(off_f[:, sel], rr.offset[:, sel], atol=1e-3)
        r = fast.config.splat_radius_px  # a splat reaches r pixels beyond the projection
        assert (off_f[:, ~cov_f] == 0).all() and np.abs(off_f).max() <= 0.5 + r


def test_carving_removes_the_same_voxels_as_the_reference() -> None:
    cfg = MemoryConfig(
        device="cpu", latent_channels=3, latent_dtype="float32", voxel_size_m=0.1,
        max_weight=6.0, carve_decrement=3.0,
    )  # fmt: skip
    fast, ref = run_both(cfg, remove_box_after=4)
    assert fast.carved_total > 0
    assert abs(fast.num_voxels - len(ref.voxels)) <= 0.01 * len(ref.voxels)


def test_dense_fine_voxels_render_as_the_reference_does() -> None:
    """Many voxels per pixel (fine voxels seen from afar, the occlusion pre-cull's case), some
    near ones spanning several pixels and random back faces: the fast render agrees."""
    from mirage_ros.core.persistence import memory_from_tensors
    from mirage_ros.core.reference import _Voxel
    from mirage_ros.core.voxel_hash import pack_keys

    cfg = MemoryConfig(device="cpu", latent_channels=3, latent_dtype="float32", voxel_size_m=0.02)
    rng = np.random.default_rng(0)
    n = 6000  # ~20 per pixel of the 15 x 20 view; z from 0.5 m (a voxel spans ~1 px) to 6 m
    ijk = np.stack(
        [rng.integers(-100, 100, n), rng.integers(-75, 75, n), rng.integers(25, 300, n)], 1
    )
    ijk = np.unique(ijk, axis=0)
    keys = pack_keys(torch.as_tensor(ijk))
    order = torch.argsort(keys)
    keys, ijk = keys[order], ijk[order.numpy()]
    m = len(ijk)
    pos = ((ijk + 0.5 + rng.uniform(-0.4, 0.4, (m, 3))) * cfg.voxel_size_m).astype(np.float32)
    nrm = rng.normal(size=(m, 3))
    nrm *= rng.uniform(0.0, 1.0, (m, 1)) / np.linalg.norm(nrm, axis=1, keepdims=True)
    nrm = nrm.astype(np.float16)
    lat = rng.normal(size=(m, 3)).astype(np.float32)
    tensors = {
        "keys": keys,
        "stamps": torch.zeros(m, dtype=torch.int64),
        "weights": torch.ones(m),
        "positions": torch.as_tensor(pos),
        "normals": torch.as_tensor(nrm),
        "latents": torch.as_tensor(lat),
    }
    fast = memory_from_tensors(cfg, "none", {"num_voxels": m}, tensors)
    ref = ReferenceLatentMemory(cfg)
    for i in range(m):
        key = (0, int(ijk[i, 0]), int(ijk[i, 1]), int(ijk[i, 2]))
        ref.voxels[key] = _Voxel(
            lat[i].astype(np.float64), pos[i].astype(np.float64), nrm[i].astype(np.float64), 1.0, 0
        )
    T = torch.eye(4, dtype=torch.float64)
    rf, rr = fast.render(K, T, H, W), ref.render(K, T, H, W)
    cov_f, cov_r = rf.coverage[0].numpy(), rr.coverage
    assert cov_r.mean() > 0.5 and (cov_f != cov_r).mean() <= 0.02  # back faces empty some
    both = cov_f & cov_r
    depth_ok = np.abs(rf.depth_m[0].numpy() - rr.depth_m) < 1e-4
    assert depth_ok[both].mean() >= 0.98
    sel = both & depth_ok
    np.testing.assert_allclose(rf.latents[0].numpy()[:, sel], rr.latents[:, sel], atol=1e-4)
    np.testing.assert_allclose(rf.offset[0].numpy()[:, sel], rr.offset[:, sel], atol=1e-3)
