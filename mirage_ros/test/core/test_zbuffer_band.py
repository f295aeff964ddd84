"""The render's surface band: within one surface, the point projected closest to the pixel wins."""

from __future__ import annotations

import torch
from mirage_ros.core.zbuffer import zbuffer_splat


def _scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    K = torch.tensor([[[100.0, 0.0, 4.5], [0.0, 100.0, 4.5], [0.0, 0.0, 1.0]]])
    T = torch.eye(4)[None]

    def at(u: float, v: float, z: float) -> list[float]:  # the point that projects to (u, v)
        return [(u - 4.5) * z / 100.0, (v - 4.5) * z / 100.0, z]

    pts = torch.tensor(
        [
            at(5.9, 5.0, 2.00),  # 0: nearest, but 0.9 px off pixel (5, 5) (reaches it by splat)
            at(5.0, 5.0, 2.03),  # 1: 3 cm behind it, on the pixel centre
            at(5.0, 5.0, 3.00),  # 2: another surface 1 m behind, on the pixel centre
        ]
    )
    return pts, torch.tensor([10, 11, 12]), K, T


def _winner(band: float | None) -> int:
    pts, ids, K, T = _scene()
    hits = zbuffer_splat(
        pts, ids, K, T, height=10, width=10, near_m=0.1, max_radius_px=1, size_m=0.05,
        front_band_m=band,
    )  # fmt: skip
    return int(hits.index[0, 5, 5])


def test_the_nearest_wins_without_a_band_or_with_a_thin_one() -> None:
    assert _winner(None) == 0
    assert _winner(0.01) == 0


def test_within_the_band_the_centred_point_wins_and_farther_surfaces_never_do() -> None:
    assert _winner(0.1) == 1
    assert _winner(0.5) == 1
    pts, ids, K, T = _scene()
    keep = torch.tensor([0, 2])  # the centred point of the far surface is 1 m behind
    hits = zbuffer_splat(
        pts[keep], ids[keep], K, T, height=10, width=10, near_m=0.1, max_radius_px=1,
        size_m=0.05, front_band_m=0.1,
    )  # fmt: skip
    assert int(hits.index[0, 5, 5]) == 0
    assert float(hits.depth_m[0, 5, 5]) == torch.tensor(2.0).item()


def test_blend_returns_the_front_candidates_with_tent_weights() -> None:
    pts, ids, K, T = _scene()
    hits = zbuffer_splat(
        pts, ids, K, T, height=10, width=10, near_m=0.1, max_radius_px=1, size_m=0.05,
        front_band_m=0.1, blend=True,
    )  # fmt: skip
    assert hits.blend_pixel is not None and hits.blend_point is not None
    assert hits.blend_weight is not None
    at = hits.blend_pixel == 5 * 10 + 5
    got = dict(zip(hits.blend_point[at].tolist(), hits.blend_weight[at].tolist(), strict=True))
    assert set(got) == {0, 1}  # the far surface (point 2) is not blended in
    assert abs(got[1] - 1.0) < 1e-5  # on the pixel centre
    assert abs(got[0] - 0.1) < 1e-4  # 0.9 px off in u: 1 - 0.9
    assert int(hits.index[0, 5, 5]) == 1  # the winner (weight, age, depth) is unchanged


def test_blended_render_is_deterministic_and_a_convex_mix() -> None:
    import dataclasses

    from mirage_ros.core.config import MemoryConfig
    from mirage_ros.core.memory import LatentSpatialMemory

    g = torch.Generator().manual_seed(3)
    K = torch.tensor([[20.0, 0.0, 7.5], [0.0, 20.0, 5.5], [0.0, 0.0, 1.0]])
    T = torch.eye(4, dtype=torch.float64)
    depth = 1.0 + 0.02 * torch.rand(12, 16, generator=g)  # a slightly rough wall 1 m ahead
    cfg = MemoryConfig(latent_channels=4, device="cpu", voxel_size_m=0.1)  # 2 cells: overlaps
    mem = LatentSpatialMemory(cfg)
    lat = torch.rand(4, 12, 16, generator=g)
    mem.integrate(lat, depth, K, T, 1)
    T2 = T.clone()
    T2[2, 3] = -2.0  # 2 m further back: voxels 0.67 px apart, several per pixel
    a, b = mem.render(K, T2, 12, 16), mem.render(K, T2, 12, 16)
    assert torch.equal(a.latents, b.latents)
    mem.config = dataclasses.replace(cfg, render_blend=False)
    single = mem.render(K, T2, 12, 16)
    assert torch.equal(a.coverage, single.coverage) and torch.equal(a.weight, single.weight)
    cov = a.coverage[0]
    lo, hi = float(lat.min()), float(lat.max())
    assert float(a.latents[0][:, cov].min()) >= lo - 1e-6
    assert float(a.latents[0][:, cov].max()) <= hi + 1e-6
    assert not torch.equal(a.latents, single.latents)  # some pixels did blend


def test_offsets_say_where_the_winner_and_the_blend_sit_in_the_pixel() -> None:
    pts, ids, K, T = _scene()
    plain = zbuffer_splat(
        pts, ids, K, T, height=10, width=10, near_m=0.1, max_radius_px=1, size_m=0.05,
        front_band_m=0.1,
    )  # fmt: skip
    assert plain.offset.shape == (1, 10, 10, 2)
    assert torch.allclose(plain.offset[0, 5, 5], torch.zeros(2), atol=1e-4)  # point 1: centred
    # pixel (6, 5) is point 0's own pixel (u 5.9 -> 6): it sits 0.1 px left of that centre
    assert torch.allclose(plain.offset[0, 5, 6], torch.tensor([-0.1, 0.0]), atol=1e-4)
    assert (plain.offset[0][plain.index[0] < 0] == 0).all()
    blended = zbuffer_splat(
        pts, ids, K, T, height=10, width=10, near_m=0.1, max_radius_px=1, size_m=0.05,
        front_band_m=0.1, blend=True,
    )  # fmt: skip
    assert blended.blend_offset is not None and blended.blend_pixel is not None
    at = blended.blend_pixel == 5 * 10 + 5
    got = {tuple(round(x, 4) for x in o) for o in blended.blend_offset[at].tolist()}
    assert got == {(0.0, 0.0), (0.9, 0.0)}  # point 1 on the centre, point 0 0.9 px right


def test_memory_blends_offsets_with_the_latents() -> None:
    from mirage_ros.core.config import MemoryConfig
    from mirage_ros.core.memory import LatentSpatialMemory

    g = torch.Generator().manual_seed(4)
    K = torch.tensor([[20.0, 0.0, 7.5], [0.0, 20.0, 5.5], [0.0, 0.0, 1.0]])
    T = torch.eye(4, dtype=torch.float64)
    cfg = MemoryConfig(latent_channels=4, device="cpu", voxel_size_m=0.1)
    mem = LatentSpatialMemory(cfg)
    mem.integrate(torch.rand(4, 12, 16, generator=g), torch.full((12, 16), 1.0), K, T, 1)
    T2 = T.clone()
    T2[0, 3] = 0.013  # a small sideways step: every voxel lands off its pixel centre
    r = mem.render(K, T2, 12, 16)
    assert r.offset.shape == (1, 2, 12, 16)
    cov = r.coverage[0]
    assert (r.offset[0][:, ~cov] == 0).all()
    assert float(r.offset[0][:, cov].abs().max()) <= 0.5 + cfg.splat_radius_px
    assert float(r.offset[0][:, cov].abs().mean()) > 0.05  # not all centred
    again = mem.render(K, T2, 12, 16)
    assert torch.equal(r.offset, again.offset)


def test_a_near_wall_is_closed_up_to_the_cap_and_the_large_cap_costs_only_near_points() -> None:
    from mirage_ros.core.zbuffer import _footprint, _reach, _square

    # a wall of 0.05 m points 0.8 m in front of the camera (6.25 px apart, splats reach 3 px at
    # f=100), a far wall 3 m behind it: with a cap of 2 the far wall shows through the gaps
    K = torch.tensor([[[100.0, 0.0, 19.5], [0.0, 100.0, 19.5], [0.0, 0.0, 1.0]]])
    T = torch.eye(4)[None]
    g = torch.arange(-3, 4, dtype=torch.float32) * 0.05
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    near = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.full((49,), 0.8)], 1)
    gf = torch.arange(-20, 21, dtype=torch.float32) * 0.05
    yy, xx = torch.meshgrid(gf, gf, indexing="ij")
    far = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.full((41 * 41,), 3.8)], 1)
    pts = torch.cat([near, far])
    ids = torch.arange(pts.shape[0])

    def far_pixels_in_the_wall(cap: int) -> int:
        hits = zbuffer_splat(
            pts, ids, K, T, height=40, width=40, near_m=0.1, max_radius_px=cap, size_m=0.05,
            front_band_m=0.1,
        )  # fmt: skip
        return int((hits.index[0, 12:28, 12:28] >= 49).sum())

    assert far_pixels_in_the_wall(2) > 20
    assert far_pixels_in_the_wall(3) == far_pixels_in_the_wall(8) == 0

    # _footprint (each point on the smallest square that holds it) == every point on the full one
    gen = torch.Generator().manual_seed(0)
    n = 500
    uf = torch.rand(n, generator=gen) * 40
    vf = torch.rand(n, generator=gen) * 40
    uk, vk = torch.floor(uf + 0.5).long(), torch.floor(vf + 0.5).long()
    # boxes that hold the own pixel's centre; a third tight (reach 0), a third within 1-2 px
    size = torch.tensor([0.0, 1.5, 6.0]).repeat(n // 3 + 1)[:n]
    lo_u = uf - 0.5 - torch.rand(n, generator=gen) * size
    hi_u = uf + 0.5 + torch.rand(n, generator=gen) * size
    lo_v = vf - 0.5 - torch.rand(n, generator=gen) * size
    hi_v = vf + 0.5 + torch.rand(n, generator=gen) * size
    for r in (0, 1, 2, 3, 8):
        dx, dy = _square(r, torch.device("cpu"))
        u, v = uk[:, None] + dx, vk[:, None] + dy
        ok = (u >= lo_u[:, None]) & (u <= hi_u[:, None]) & (v >= lo_v[:, None])
        ok &= v <= hi_v[:, None]
        e, s = torch.nonzero(ok, as_tuple=True)
        full = {(int(a), int(b), int(c)) for a, b, c in zip(e, dx[s], dy[s], strict=True)}
        reach = _reach(uk, vk, lo_u, hi_u, lo_v, hi_v, r)
        got = _footprint(uk, vk, lo_u, hi_u, lo_v, hi_v, reach, r)
        mine = [(int(a), int(b), int(c)) for a, b, c in zip(*got, strict=True)]
        assert len(mine) == len(set(mine)) and set(mine) == full
