"""LatentSpatialMemory: fusion, z-buffer, determinism, batching, budget, eviction, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from core_scenes import intrinsics, look_at, raycast, surface_latents
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ConfigError, PoseError, ShapeError
from mirage_ros.core.memory import LatentSpatialMemory

ROOM = ((-3.0, -2.0, 0.0), (3.0, 2.0, 2.5))
BOX = ((0.5, -0.5, 0.0), (1.5, 0.5, 1.0))
H, W = 24, 32
K = intrinsics(H, W, 24.0)


def cfg(**kw: object) -> MemoryConfig:
    base: dict[str, object] = {"device": "cpu", "latent_channels": 4}
    base.update(kw)
    return MemoryConfig(**base)  # type: ignore[arg-type]


def frame(T: torch.Tensor, boxes: list = [BOX], c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: B006
    d = raycast(K, T, H, W, boxes, ROOM)
    return surface_latents(d, K, T, c), d


def orbit(i: int, n: int = 12) -> torch.Tensor:
    a = 2 * math.pi * i / n
    return look_at((-1.0 + 1.5 * math.cos(a), 1.2 * math.sin(a), 1.2), (1.0, 0.0, 0.6))


def filled(mem: LatentSpatialMemory, n: int = 12) -> LatentSpatialMemory:
    for i in range(n):
        T = orbit(i, n)
        lat, d = frame(T, c=mem.config.latent_channels)
        mem.integrate(lat, d, K, T, 1_000_000 * i)
    return mem


def test_same_frame_twice_keeps_the_mean_and_adds_weight() -> None:
    mem = LatentSpatialMemory(cfg(latent_dtype="float32", max_weight=1e6))
    T = orbit(0)
    lat, d = frame(T)
    first = mem.integrate(lat, d, K, T, 0)
    pos1, lat1, w1 = mem.points()
    second = mem.integrate(lat, d, K, T, 1)
    pos2, lat2, w2 = mem.points()
    assert first.voxels_new == second.voxels_updated and second.voxels_new == 0
    assert torch.allclose(lat1, lat2, atol=1e-6) and torch.allclose(pos1, pos2, atol=1e-6)
    assert torch.equal(w2, 2 * w1)


def test_fusion_is_the_weighted_mean_of_observations() -> None:
    mem = LatentSpatialMemory(cfg(latent_dtype="float32", carve_free_space=False))
    T = look_at((0.0, 0.0, 1.0), (1.0, 0.0, 1.0))
    d = torch.full((H, W), 2.0)
    mem.integrate(torch.ones(4, H, W), d, K, T, 0)
    mem.integrate(torch.full((4, H, W), 4.0), d, K, T, 1)
    _, lat, _ = mem.points()
    assert torch.allclose(lat, torch.full_like(lat, 2.5))


def test_weight_is_capped_at_max_weight() -> None:
    mem = LatentSpatialMemory(cfg(max_weight=3.0))
    T = orbit(0)
    lat, d = frame(T)
    for s in range(5):
        mem.integrate(lat, d, K, T, s)
    assert float(mem.points()[2].max()) <= 3.0


def test_invalid_depth_cells_are_skipped() -> None:
    mem = LatentSpatialMemory(cfg(max_depth_m=5.0))
    d = torch.full((H, W), 2.0)
    d[0, :] = 0.0
    d[1, :] = float("nan")
    d[2, :] = float("inf")
    d[3, :] = 7.0
    d[4, :] = 0.05
    st = mem.integrate(torch.zeros(4, H, W), d, K, torch.eye(4), 0)
    assert st.cells_valid == (H - 5) * W


def test_render_of_empty_memory_is_empty() -> None:
    r = LatentSpatialMemory(cfg()).render(K, torch.eye(4), H, W)
    assert r.latents.shape == (1, 4, H, W) and not bool(r.coverage.any())
    assert bool(r.depth_m.isnan().all()) and bool(r.age_s.isnan().all())


def test_nearest_surface_wins() -> None:
    mem = LatentSpatialMemory(cfg(carve_free_space=False, latent_dtype="float32"))
    T = torch.eye(4)
    mem.integrate(torch.full((4, H, W), 1.0), torch.full((H, W), 3.0), K, T, 0)
    mem.integrate(torch.full((4, H, W), 2.0), torch.full((H, W), 1.5), K, T, 1)
    r = mem.render(K, T, H, W)
    assert bool(r.coverage.all())
    assert torch.allclose(r.depth_m, torch.full_like(r.depth_m, 1.5), atol=0.03)
    assert bool((r.latents == 2.0).all())


def test_render_reports_weight_and_age_relative_to_newest_stamp() -> None:
    mem = LatentSpatialMemory(cfg(carve_free_space=False))
    mem.integrate(torch.zeros(4, H, W), torch.full((H, W), 2.0), K, torch.eye(4), 1_000_000_000)
    T2 = look_at((0.0, 0.0, 0.0), (0.0, 0.0, -1.0))  # looking away
    mem.integrate(torch.zeros(4, H, W), torch.full((H, W), 2.0), K, T2, 3_500_000_000)
    r = mem.render(K, torch.eye(4), H, W)
    assert torch.allclose(r.age_s[r.coverage], torch.tensor(2.5))
    assert bool((r.weight[r.coverage] > 0).all()) and bool((r.weight[~r.coverage] == 0).all())


def test_same_inputs_give_bit_identical_renders() -> None:
    a, b = filled(LatentSpatialMemory(cfg())), filled(LatentSpatialMemory(cfg()))
    T = orbit(3, 7)
    ra, rb = a.render(K, T, H, W), b.render(K, T, H, W)
    assert torch.equal(ra.latents, rb.latents) and torch.equal(ra.coverage, rb.coverage)
    assert torch.equal(ra.depth_m.nan_to_num(-1), rb.depth_m.nan_to_num(-1))


def test_batched_render_equals_per_view_renders() -> None:
    mem = filled(LatentSpatialMemory(cfg()))
    Ts = torch.stack([orbit(i, 5) for i in range(5)])
    batched = mem.render(K, Ts, H, W)
    for i in range(5):
        single = mem.render(K, Ts[i], H, W)
        assert torch.equal(batched.latents[i], single.latents[0])
        assert torch.equal(batched.depth_m[i].nan_to_num(-1), single.depth_m[0].nan_to_num(-1))
        assert torch.equal(batched.age_s[i].nan_to_num(-1), single.age_s[0].nan_to_num(-1))


def test_batched_render_in_view_chunks_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from mirage_ros.core import zbuffer

    mem = filled(LatentSpatialMemory(cfg()))
    Ts = torch.stack([orbit(i, 5) for i in range(5)])
    whole = mem.render(K, Ts, H, W)
    monkeypatch.setattr(zbuffer, "_MAX_BATCH_ELEMS", mem.num_voxels * 2)  # chunks of 2 views
    chunked = mem.render(K, Ts, H, W)
    assert torch.equal(whole.latents, chunked.latents)
    assert torch.equal(whole.depth_m.nan_to_num(-1), chunked.depth_m.nan_to_num(-1))


def test_splat_footprint_closes_holes_of_near_surfaces() -> None:
    mem0 = LatentSpatialMemory(cfg(splat_radius_px=0, carve_free_space=False))
    mem1 = LatentSpatialMemory(cfg(splat_radius_px=2, carve_free_space=False))
    T = torch.eye(4)
    for m in (mem0, mem1):
        m.integrate(torch.zeros(4, H, W), torch.full((H, W), 0.6), K, T, 0)
    Kbig = intrinsics(2 * H, 2 * W, 48.0)  # 2x zoom: voxels ~4 px apart, half-size 2 px
    inner = (slice(None), slice(8, -8), slice(8, -8))
    c0 = mem0.render(Kbig, T, 2 * H, 2 * W).coverage[inner]
    c1 = mem1.render(Kbig, T, 2 * H, 2 * W).coverage[inner]
    assert not bool(c0.all()) and bool(c1.all())
    # a render may pass its own cap (the fine render passes twice the config's)
    r0 = mem1.render(Kbig, T, 2 * H, 2 * W, splat_radius_px=0)
    assert torch.equal(r0.coverage, mem0.render(Kbig, T, 2 * H, 2 * W).coverage)


def test_memory_bytes_count_every_held_tensor_and_respect_the_budget() -> None:
    mem = LatentSpatialMemory(cfg(max_memory_mb=0.05))
    st = [mem.integrate(*frame(orbit(i)), K, orbit(i), i) for i in range(12)]
    assert mem.memory_bytes <= mem.budget_bytes
    assert sum(s.voxels_evicted for s in st) == mem.evicted_total > 0
    held = sum(t.numel() * t.element_size() for t in mem._arrays()) + mem.index.nbytes
    assert held == mem.memory_bytes


@pytest.mark.parametrize("policy", ["lru", "farthest"])
def test_eviction_policy_order(policy: str) -> None:
    # room for ~2 frames: the third forces eviction of the oldest / farthest voxels
    probe = LatentSpatialMemory(cfg())
    per_voxel = probe._slot_bytes + probe._index_bytes_per_slot
    mem = LatentSpatialMemory(cfg(max_memory_mb=2.2 * H * W * per_voxel / 2**20, eviction=policy,
                                  carve_free_space=False))  # fmt: skip
    z = torch.zeros(4, H, W)
    far, near = torch.eye(4), look_at((0.0, 0.0, 0.0), (0.0, 0.0, -1.0))
    near[:3, 3] = torch.tensor([0.0, 0.0, 0.5])
    mem.integrate(z, torch.full((H, W), 8.0), K, far, 0)  # old (and far from the last camera)
    mem.integrate(z, torch.full((H, W), 1.0), K, near, 1)
    mem.integrate(z, torch.full((H, W), 2.0), K, near, 2)
    pos, _, _ = mem.points()
    far_plane = int((pos[:, 2] > 7.0).sum())
    assert mem.evicted_total > 0
    assert far_plane == H * W - mem.evicted_total, "only the old/far plane loses voxels"


def test_new_voxels_go_to_the_delta_without_rebuilding_the_main_index() -> None:
    mem = filled(LatentSpatialMemory(cfg()), 3)
    mem._compact()
    main_before = mem.index.main_keys
    T = look_at((0.0, 0.0, 1.0), (0.0, -1.0, 1.0))
    mem.integrate(*frame(T), K, T, 10**9)
    assert mem.index.main_keys is main_before and mem.index.delta_size > 0


def test_bad_inputs_raise_typed_errors() -> None:
    mem = LatentSpatialMemory(cfg())
    lat, d = torch.zeros(4, H, W), torch.ones(H, W)
    with pytest.raises(ShapeError):
        mem.integrate(torch.zeros(3, H, W), d, K, torch.eye(4), 0)
    with pytest.raises(ShapeError):
        mem.integrate(lat, torch.ones(H, W + 1), K, torch.eye(4), 0)
    with pytest.raises(ShapeError):
        mem.integrate(lat, d, K, torch.eye(4), 0.5)  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        mem.integrate(torch.full((4, H, W), float("nan")), d, K, torch.eye(4), 0)
    bad = torch.eye(4)
    bad[0, 0] = float("nan")
    with pytest.raises(PoseError):
        mem.render(K, bad, H, W)
    with pytest.raises(ShapeError):
        mem.render(K, torch.eye(4), 0, W)
    with pytest.raises(ShapeError):
        mem.render(K.expand(2, 3, 3), torch.eye(4).expand(3, 4, 4), H, W)
    with pytest.raises(ConfigError):
        LatentSpatialMemory(cfg(max_memory_mb=0.0001))


def test_reset_forgets_everything() -> None:
    mem = filled(LatentSpatialMemory(cfg()), 2)
    mem.reset()
    assert mem.num_voxels == 0 and mem.frames_integrated == 0
    assert mem.stats()["evicted_total"] == 0


def test_render_is_the_same_before_and_after_squeezing_out_freed_slots() -> None:
    mem = filled(LatentSpatialMemory(cfg()), 6)
    T = look_at((-2.0, 0.0, 1.2), (2.0, 0.0, 0.8))
    mem.integrate(*frame(T, boxes=[]), K, T, 10**9)  # the box is gone: carving frees slots
    mem.integrate(*frame(T, boxes=[]), K, T, 10**9 + 1)
    assert mem.num_voxels < mem.n_used, "the scene must leave holes for this test"
    before = mem.render(K, orbit(2), H, W)
    mem._compact()
    after = mem.render(K, orbit(2), H, W)
    assert torch.equal(before.latents, after.latents)
    assert torch.equal(before.depth_m.nan_to_num(-1), after.depth_m.nan_to_num(-1))
