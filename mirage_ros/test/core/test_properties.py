"""Hypothesis properties: render reproduces an integrated frame, budget holds, files round-trip."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.memory import LatentSpatialMemory

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_pose(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, generator=g, dtype=torch.float64)
    S = torch.zeros(3, 3, dtype=torch.float64)
    S[0, 1], S[0, 2], S[1, 2] = -w[2], w[1], -w[0]
    S = S - S.T
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.linalg.matrix_exp(S)
    T[:3, 3] = torch.randn(3, generator=g, dtype=torch.float64) * 3.0
    return T


def random_frame(seed: int, h: int, w: int, c: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    depth = 1.0 + 2.0 * torch.rand(h, w, generator=g)
    depth[torch.rand(h, w, generator=g) < 0.2] = 0.0  # some invalid cells
    lat = torch.randn(c, h, w, generator=g)
    f = 8.0 + 4.0 * float(torch.rand(1, generator=g))
    K = torch.tensor([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
    return lat, depth, K


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    h=st.integers(2, 12),
    w=st.integers(2, 12),
    dtype=st.sampled_from(["float32", "float16"]),
)
def test_render_at_the_integrated_pose_reproduces_its_latents(
    seed: int, h: int, w: int, dtype: str
) -> None:
    # cells >= 8 cm apart, voxels 5 mm: every cell owns its voxel, so the render must
    # return exactly the (stored-precision) latent of every valid cell, and nothing else
    cfg = MemoryConfig(
        device="cpu", latent_channels=3, voxel_size_m=0.005, splat_radius_px=0, latent_dtype=dtype
    )
    mem = LatentSpatialMemory(cfg)
    lat, depth, K = random_frame(seed, h, w, 3)
    T = random_pose(seed)
    mem.integrate(lat, depth, K, T, 5)
    r = mem.render(K, T, h, w)
    valid = depth > 0
    assert torch.equal(r.coverage[0], valid)
    stored = lat.to(cfg.storage_dtype).float()
    assert torch.equal(r.latents[0][:, valid], stored[:, valid])
    assert torch.allclose(r.depth_m[0][valid], depth[valid], rtol=1e-4)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    budget_kb=st.floats(2.0, 40.0),
    frames=st.integers(1, 8),
    policy=st.sampled_from(["lru", "farthest"]),
)
def test_memory_bytes_never_exceed_the_budget(
    seed: int, budget_kb: float, frames: int, policy: str
) -> None:
    cfg = MemoryConfig(
        device="cpu", latent_channels=4, voxel_size_m=0.02, max_memory_mb=budget_kb / 1024,
        eviction=policy,
    )  # fmt: skip
    mem = LatentSpatialMemory(cfg)
    for i in range(frames):
        lat, depth, K = random_frame(seed + i, 10, 12, 4)
        mem.integrate(lat, depth, K, random_pose(seed + 7 * i), i)
        assert mem.memory_bytes <= mem.budget_bytes
        assert mem.num_voxels <= mem.max_voxels


@SETTINGS
@given(seed=st.integers(0, 10_000), frames=st.integers(1, 4))
def test_save_load_render_is_bit_identical(seed: int, frames: int) -> None:
    cfg = MemoryConfig(device="cpu", latent_channels=3, voxel_size_m=0.1)
    mem = LatentSpatialMemory(cfg)
    for i in range(frames):
        lat, depth, K = random_frame(seed + i, 8, 10, 3)
        mem.integrate(lat, depth, K, random_pose(seed + i % 2), 1000 * i)
    T = random_pose(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        mem.save(path)
        loaded = LatentSpatialMemory.from_file(path, device="cpu")
    a, b = mem.render(K, T, 8, 10), loaded.render(K, T, 8, 10)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.coverage, b.coverage)
    assert torch.equal(a.depth_m.nan_to_num(-1), b.depth_m.nan_to_num(-1))
    assert torch.equal(a.age_s.nan_to_num(-1), b.age_s.nan_to_num(-1))
