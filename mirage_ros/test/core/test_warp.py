"""Sub-cell placement of the decoded image (core/warp.py) against its slow reference."""

from __future__ import annotations

import pytest
import torch
from mirage_ros.core.errors import ShapeError
from mirage_ros.core.warp import subcell_warp, subcell_warp_reference


def test_zero_offsets_leave_the_image_unchanged() -> None:
    image = torch.rand(2, 3, 12, 16)
    out = subcell_warp(image, torch.zeros(2, 2, 3, 4), stride=4)
    assert torch.allclose(out, image, atol=1e-6)


def test_a_quarter_cell_offset_moves_the_content_one_pixel() -> None:
    image = torch.rand(1, 1, 8, 16)
    offset = torch.zeros(1, 2, 2, 4)
    offset[:, 0] = 0.25  # every latent sits a quarter cell (1 px at stride 4) right of centre
    out = subcell_warp(image, offset, stride=4)
    assert torch.allclose(out[..., 1:], image[..., :-1], atol=1e-6)
    assert torch.allclose(out[..., 0], image[..., 0], atol=1e-6)  # replicated border
    half = subcell_warp(image, offset, stride=4, gain=0.0)
    assert torch.allclose(half, image, atol=1e-6)


def test_fast_warp_agrees_with_the_reference() -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 12, 20, generator=g)
    offset = (torch.rand(2, 2, 3, 5, generator=g) - 0.5) * 1.5
    offset[0, :, 1, 2] = 0.0  # an empty cell
    fast = subcell_warp(image, offset, stride=4, gain=1.3)
    slow = subcell_warp_reference(image, offset, stride=4, gain=1.3)
    assert torch.allclose(fast, slow, atol=1e-5)


def test_offsets_must_fit_the_image() -> None:
    with pytest.raises(ShapeError):
        subcell_warp(torch.rand(1, 3, 12, 16), torch.zeros(1, 2, 4, 4), stride=4)
