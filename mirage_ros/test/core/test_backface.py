"""Surface normals and back-face culling: a thin wall's far face never shows through."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from core_scenes import intrinsics, look_at, raycast, surface_latents
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.integrate import cell_normals
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.reference import ReferenceLatentMemory
from mirage_ros.core.zbuffer import BACKFACE_COS, zbuffer_splat

H, W = 30, 40
K = intrinsics(H, W, 30.0)
# a wall 0.06 m thick (thinner than the 0.1 m surface band) between x = 1.013 and x = 1.073
WALL = ((1.013, -3.017, -0.011), (1.073, 3.021, 2.513))


def _normals(depth: torch.Tensor, K3: torch.Tensor) -> torch.Tensor:
    valid = torch.isfinite(depth) & (depth > 0)
    return cell_normals(torch.where(valid, depth, torch.zeros_like(depth)).float(), valid, K3)


def test_a_tilted_plane_gets_its_normal_facing_the_camera() -> None:
    # the plane z = 2 + 0.5 x (camera frame), seen by a camera at the origin
    Kf = intrinsics(9, 9, 10.0).float()
    u = torch.arange(9.0)
    x_over_z = (u[None, :] - 4.0) / 10.0
    depth = (2.0 / (1.0 - 0.5 * x_over_z)).expand(9, 9).clone()
    n = _normals(depth, Kf)
    expected = torch.tensor([0.5, 0.0, -1.0]) / math.sqrt(1.25)  # facing the camera: n_z < 0
    every = n.reshape(-1, 3)  # the border cells too (one-sided differences lie in the plane)
    torch.testing.assert_close(every, expected.expand_as(every), atol=1e-5, rtol=0)


def test_no_normal_at_depth_edges_or_next_to_invalid_cells() -> None:
    Kf = intrinsics(7, 7, 10.0).float()
    depth = torch.full((7, 7), 2.0)
    depth[:, 4:] = 4.0  # a depth edge between columns 3 and 4
    depth[5, 2] = float("nan")
    n = _normals(depth, Kf)
    known = n.norm(dim=-1) > 0
    assert not bool(known[:, 3].any()) and not bool(known[:, 4].any())  # across the edge
    assert not bool(known[4, 2]) and not bool(known[5, 1])  # next to the invalid cell
    assert bool(known[2, 2]) and bool(known[2, 5])  # flat on either side


def _wall_memory(cull: bool, reference: bool = False) -> Any:
    """The wall seen from both sides: near face (x = 1.013) from x < 1, far face from x > 1.1."""
    cfg = MemoryConfig(
        device="cpu", latent_channels=3, latent_dtype="float32", voxel_size_m=0.05,
        render_backface_cull=cull, carve_free_space=False,
    )  # fmt: skip
    mem = ReferenceLatentMemory(cfg) if reference else LatentSpatialMemory(cfg)
    stamp = 0
    for side, eye_x, target_x in (("near", -0.5, 3.0), ("far", 2.6, -1.0)):
        for k in range(4):
            T = look_at((eye_x, -0.4 + 0.27 * k, 1.2), (target_x, 0.1 * k, 1.0))
            d = raycast(K, T, H, W, [WALL])
            lat = surface_latents(d, K, T, 3, seed=0 if side == "near" else 1)
            d = torch.nan_to_num(d, posinf=0.0)
            mem.integrate(lat, d, K, T, stamp)
            stamp += 1
    return mem


def test_the_far_face_of_a_thin_wall_is_culled_and_the_near_face_wins() -> None:
    T = look_at((-0.3, 0.05, 1.1), (3.0, 0.0, 1.0))
    truth = raycast(K, T, H, W, [WALL])
    with_cull = _wall_memory(True).render(K, T, H, W)
    without = _wall_memory(False).render(K, T, H, W)
    near_x = WALL[0][0]
    cam = T[:3, :3]
    for r, name in ((with_cull, "cull"), (without, "no cull")):
        assert bool(r.coverage[0].float().mean() > 0.9), name
    # the world x of each rendered pixel's depth: the near face sits at x = 1.013
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    dirs_x = (rays @ cam.T)[..., 0]

    def far_face_share(r: object) -> float:
        depth = r.depth_m[0].double()  # type: ignore[attr-defined]
        x = T[0, 3] + dirs_x * depth
        seen = r.coverage[0]  # type: ignore[attr-defined]
        return float((x[seen] > near_x + 0.045).double().mean())

    # without culling the band lets the far face win half the pixels
    assert far_face_share(without) > 0.3
    assert far_face_share(with_cull) == 0.0
    # and the culled render is the near face's latents alone: no far-face latent blended in
    both = with_cull.coverage[0] & torch.isfinite(truth)
    near_only = _near_only_memory().render(K, T, H, W)
    same = both & near_only.coverage[0]
    torch.testing.assert_close(with_cull.latents[0][:, same], near_only.latents[0][:, same])


def _near_only_memory() -> LatentSpatialMemory:
    mem = _wall_memory(True)
    far = mem.normals[: mem.n_used, 0].float() > 0  # the far face's normals point to +x
    mem._free(torch.nonzero(far).squeeze(1))
    return mem


def test_culling_follows_the_camera_side_and_skips_points_without_normals() -> None:
    Kb = intrinsics(10, 10, 20.0).float()[None]
    T = torch.eye(4)[None]  # camera at the origin looking along +z
    pts = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]])
    ids = torch.tensor([1, 2])

    def winners(normals: torch.Tensor | None) -> set[int]:
        hits = zbuffer_splat(
            pts, ids, Kb, T, height=10, width=10, near_m=0.1, max_radius_px=1, size_m=0.05,
            front_band_m=0.1, blend=True, normals=normals,
        )  # fmt: skip
        assert hits.blend_point is not None
        return {int(ids[i]) for i in hits.blend_point.tolist()}

    toward, away, none = [0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]
    assert winners(None) == {1, 2}
    assert winners(torch.tensor([toward, away])) == {1}
    assert winners(torch.tensor([none, away])) == {1}
    assert winners(torch.tensor([toward, none])) == {1, 2}
    # an edge-on normal (within BACKFACE_COS of the plane) is kept; a weak one too
    edge = [0.0, math.sqrt(1 - (0.5 * BACKFACE_COS) ** 2), 0.5 * BACKFACE_COS]
    weak = [0.0, 0.0, 0.5 * BACKFACE_COS]
    assert winners(torch.tensor([edge, weak])) == {1, 2}


def test_cull_off_renders_exactly_as_without_normals() -> None:
    mem = _wall_memory(False)
    T = look_at((-0.3, 0.05, 1.1), (3.0, 0.0, 1.0))
    a = mem.render(K, T, H, W)
    mem.normals.zero_()
    mem.config = dataclasses.replace(mem.config, render_backface_cull=True)
    b = mem.render(K, T, H, W)  # zero normals are never culled
    assert torch.equal(a.latents, b.latents) and torch.equal(a.coverage, b.coverage)


def test_the_reference_culls_the_same_voxels() -> None:
    T = look_at((-0.3, 0.05, 1.1), (3.0, 0.0, 1.0))
    fast = _wall_memory(True).render(K, T, H, W)
    ref = _wall_memory(True, reference=True).render(K, T, H, W)
    cov_f = fast.coverage[0].numpy()
    assert (cov_f != ref.coverage).mean() <= 0.01
    both = cov_f & ref.coverage
    assert (abs(fast.depth_m[0].numpy() - ref.depth_m) < 1e-4)[both].mean() >= 0.99


def test_a_back_face_hides_what_lies_behind_it() -> None:
    """The wall's near face was never seen: its far face must not show, nor the room behind."""
    back_wall = ((3.013, -3.017, -0.011), (3.071, 3.021, 2.513))
    cfg = MemoryConfig(
        device="cpu", latent_channels=3, latent_dtype="float32", voxel_size_m=0.05,
        carve_free_space=False,
    )  # fmt: skip
    mem = LatentSpatialMemory(cfg)
    for k in range(4):  # from between the walls: the back wall (facing -x) and the far face (+x)
        for target_x in (6.0, -1.0):
            T = look_at((2.2, -0.4 + 0.27 * k, 1.2), (target_x, 0.1 * k, 1.0))
            d = raycast(K, T, H, W, [WALL, back_wall])
            lat = surface_latents(d, K, T, 3)
            mem.integrate(lat, torch.nan_to_num(d, posinf=0.0), K, T, k)
    T = look_at((-0.3, 0.05, 1.1), (3.0, 0.0, 1.0))
    r = mem.render(K, T, H, W)
    # every ray meets the unseen near side first (but for a gap between two far-face splats)
    assert float(r.coverage.float().mean()) < 0.01
    mem.config = dataclasses.replace(cfg, render_backface_cull=False)
    assert float(mem.render(K, T, H, W).coverage.float().mean()) > 0.7  # the far face shows


def test_a_back_face_in_front_leaves_the_pixel_empty() -> None:
    Kb = intrinsics(10, 10, 20.0).float()[None]
    T = torch.eye(4)[None]
    pts = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0]])  # 1 m apart: beyond any band
    ids = torch.tensor([1, 2])
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])  # the near one faces away
    for band in (None, 0.1):
        kw = {"front_band_m": band, "blend": band is not None}
        hit = zbuffer_splat(pts, ids, Kb, T, height=10, width=10, near_m=0.1, **kw)
        assert int(hit.index[0, 5, 5]) == 0  # without normals the nearest wins
        hit = zbuffer_splat(pts, ids, Kb, T, height=10, width=10, near_m=0.1, normals=normals, **kw)
        assert int(hit.index[0, 5, 5]) == -1 and bool(torch.isnan(hit.depth_m[0, 5, 5]))
