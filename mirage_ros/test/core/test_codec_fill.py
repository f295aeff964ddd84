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


def test_a_view_with_nothing_seen_keeps_its_image_in_a_batch(device: str) -> None:
    """Each view of a batch is filled from its own seen pixels; one that saw nothing keeps the
    decoder's image (it was once filled with black when another view of the batch saw some)."""
    from mirage_ros.core.fill import blend_image_fill

    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(3, 3, 16, 24, generator=g).to(device)
    cov = torch.zeros(3, 4, 6, dtype=torch.bool)
    cov[0, :, :3] = True  # half seen
    cov[2] = True  # all seen
    out = blend_image_fill(rgb, cov.to(device), 4, 1.0, 5).cpu()
    assert torch.equal(out[1], rgb[1].cpu())
    assert torch.equal(out[2], rgb[2].cpu())
    assert torch.equal(out[0, ..., :12], rgb[0, ..., :12].cpu())
    single = blend_image_fill(rgb[:1], cov[:1].to(device), 4, 1.0, 5).cpu()
    torch.testing.assert_close(out[:1], single, rtol=0, atol=1e-6)
    if device != "cpu":  # CUDA sums the neighbour mean in another order: float rounding apart
        ref = blend_image_fill(rgb.cpu(), cov, 4, 1.0, 5)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_image_fill_blend_out_of_range_is_a_config_error() -> None:
    from mirage_ros.core.codec import CodecConfig
    from mirage_ros.core.errors import ConfigError

    with pytest.raises(ConfigError, match="image_fill_blend"):
        CodecConfig(image_fill_blend=1.5)


def _seen_left_and_right(h: int = 24, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    z = torch.rand(1, 3, h, w, generator=g)
    cov = torch.zeros(1, 1, h, w)
    cov[..., :, :6] = 1.0
    cov[..., :, -5:] = 1.0
    cov[..., 10:14, 6:12] = 1.0
    return z, cov


def test_harmonic_fill_reference_is_exact_on_a_linear_ramp() -> None:
    """Linear functions are harmonic: known at both ends, the reference reproduces the ramp."""
    from mirage_ros.core.fill import harmonic_fill_reference

    ramp = torch.linspace(0.0, 1.0, 20).expand(1, 1, 8, 20).clone()
    cov = torch.zeros(1, 1, 8, 20)
    cov[..., :2] = 1.0
    cov[..., -2:] = 1.0
    out = harmonic_fill_reference(ramp * cov, cov, tol=1e-8)
    torch.testing.assert_close(out, ramp, atol=1e-4, rtol=0)


def test_harmonic_fill_approaches_the_reference_and_keeps_seen_cells() -> None:
    from mirage_ros.core.fill import harmonic_fill, harmonic_fill_reference, push_pull_fill

    z, cov = _seen_left_and_right()
    ref = harmonic_fill_reference(z, cov)
    hole = cov == 0
    err_pp = float((push_pull_fill(z, cov) - ref)[hole.expand_as(z)].abs().mean())
    errs = [
        float((harmonic_fill(z, cov, k) - ref)[hole.expand_as(z)].abs().mean()) for k in (10, 50)
    ]
    assert errs[1] < errs[0] < 0.7 * err_pp  # more sweeps, closer to the harmonic fill
    fast = harmonic_fill(z, cov, 10)
    assert torch.equal(fast[(cov > 0).expand_as(z)], z[(cov > 0).expand_as(z)])
    assert torch.equal(fast, harmonic_fill(z, cov, 10))  # deterministic
    assert torch.equal(harmonic_fill(z, cov, 0), push_pull_fill(z, cov))


def test_codec_decode_uses_the_configured_fill(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mirage_ros.core.codec import Codec, CodecConfig, load_codec, save_codec
    from mirage_ros.core.errors import ConfigError
    from mirage_ros.core.fill import blend_image_fill

    small = dict(latent_channels=8, encoder_width=8, width=8, inner_width=8, head_channels=4)
    torch.manual_seed(0)
    plain = Codec(CodecConfig(**small)).eval()
    filled = Codec(CodecConfig(**small, image_fill_blend=1.0, image_fill_iterations=5)).eval()
    filled.load_state_dict(plain.state_dict())
    assert filled.codec_id == plain.codec_id  # the fill is inference-only: same weights, same id
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, 8, 6, 10, generator=g)
    cov = torch.zeros(1, 6, 10, dtype=torch.bool)
    cov[:, :, :4] = True
    depth = torch.full((1, 6, 10), 2.0)
    with torch.inference_mode():
        raw, conf_raw = plain.decode(z, cov, depth, 23, 40)  # odd size: padded and cropped
        out, conf = filled.decode(z, cov, depth, 23, 40)
    torch.testing.assert_close(out, blend_image_fill(raw, cov, 4, 1.0, 5))
    assert torch.equal(conf, conf_raw)  # confidence still comes from the decoder
    save_codec(filled, tmp_path / "f.safetensors")
    assert load_codec(tmp_path / "f.safetensors", device="cpu").config == filled.config
    with pytest.raises(ConfigError, match="image_fill_iterations"):
        CodecConfig(image_fill_iterations=-1)
