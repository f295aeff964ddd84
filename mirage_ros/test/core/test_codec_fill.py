"""The codec's image-space fill of never-seen pixels (blend_image_fill)."""

from __future__ import annotations

import pytest
import torch


def test_image_fill_blend_changes_only_never_seen_pixels_and_is_bounded() -> None:
    from mirage_ros.core.fill import blend_image_fill

    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 16, 24, generator=g)
    cov = torch.zeros(1, 4, 6, dtype=torch.bool)
    cov[:, :, :3] = True  # left half of the latent grid seen
    out = blend_image_fill(rgb, cov, 4, 0.9)
    assert torch.equal(out[..., :12], rgb[..., :12])  # covered pixels untouched
    assert not torch.equal(out[..., 12:], rgb[..., 12:])
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.equal(blend_image_fill(rgb, cov, 4, 0.0), rgb)
    nothing = torch.zeros_like(cov)
    assert torch.equal(blend_image_fill(rgb, nothing, 4, 0.9), rgb)  # nothing to fill from


def test_image_fill_blend_out_of_range_is_a_config_error() -> None:
    from mirage_ros.core.codec import CodecConfig
    from mirage_ros.core.errors import ConfigError

    with pytest.raises(ConfigError, match="image_fill_blend"):
        CodecConfig(image_fill_blend=1.5)
