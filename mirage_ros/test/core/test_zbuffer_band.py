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
