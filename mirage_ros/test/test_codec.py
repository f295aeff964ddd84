"""Tests of the latent codec nets and their weights files (tiny models, small images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mirage_ros.core.codec import (
    DEFAULT_WEIGHTS,
    Codec,
    CodecConfig,
    load_codec,
    save_codec,
    sidecar_path,
)
from mirage_ros.core.errors import CodecError, ConfigError, ShapeError

TINY = CodecConfig(latent_channels=8, encoder_width=8, width=8, inner_width=8, head_channels=4)


def _tiny(seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    codec = Codec(TINY)
    with torch.no_grad():  # non-zero last layers so every path is exercised
        for p in codec.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return codec.eval()


@pytest.mark.parametrize(("height", "width"), [(16, 16), (23, 37), (48, 64), (5, 9)])
def test_encode_decode_shapes_at_any_resolution(height: int, width: int, device: str) -> None:
    codec = _tiny().to(device)
    rgb = torch.rand(2, 3, height, width, device=device)
    z = codec.encode(rgb)
    h, w = codec.latent_shape(height, width)
    assert z.shape == (2, TINY.latent_channels, h, w)
    cov = torch.rand(2, h, w, device=device) > 0.5
    depth = torch.where(cov, torch.rand(2, h, w, device=device) * 4, torch.nan)
    out, conf = codec.decode(z, cov, depth, height, width)
    assert out.shape == (2, 3, height, width)
    assert conf.shape == (2, 1, height, width)
    for t in (out, conf):
        assert torch.isfinite(t).all()
        assert t.min() >= 0.0 and t.max() <= 1.0


def test_decode_accepts_floor_latent_grid() -> None:
    codec = _tiny()
    z = torch.randn(1, TINY.latent_channels, 5, 9)  # floor(23/4), floor(37/4)
    cov = torch.ones(1, 5, 9, dtype=torch.bool)
    out, conf = codec.decode(z, cov, torch.ones(1, 5, 9), 23, 37)
    assert out.shape == (1, 3, 23, 37) and conf.shape == (1, 1, 23, 37)


def test_decode_ignores_latents_outside_coverage() -> None:
    codec = _tiny()
    z = torch.randn(1, TINY.latent_channels, 4, 4)
    cov = torch.zeros(1, 4, 4, dtype=torch.bool)
    cov[:, :2] = True
    depth = torch.full((1, 4, 4), 2.0)
    z2 = z.clone()
    z2[:, :, 2:] = torch.randn(1, TINY.latent_channels, 2, 4) * 100
    z2[:, :, 3, 3] = torch.nan
    a = codec.decode(z, cov, depth, 16, 16)
    b = codec.decode(z2, cov, depth, 16, 16)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_shapes_raise_shape_error() -> None:
    codec = _tiny()
    with pytest.raises(ShapeError):
        codec.encode(torch.rand(3, 16, 16))
    with pytest.raises(ShapeError):
        codec.encode(torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8))
    z = torch.randn(1, TINY.latent_channels, 4, 4)
    cov = torch.ones(1, 4, 4, dtype=torch.bool)
    with pytest.raises(ShapeError):
        codec.decode(z, cov, torch.ones(1, 4, 5), 16, 16)
    with pytest.raises(ShapeError):
        codec.decode(z, cov, torch.ones(1, 4, 4), 32, 16)
    with pytest.raises(ShapeError):
        codec.decode(torch.randn(1, 3, 4, 4), cov, torch.ones(1, 4, 4), 16, 16)
    with pytest.raises(ShapeError):
        codec.preview_rgb(torch.randn(5, 3))


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        CodecConfig(stride=3)
    with pytest.raises(ConfigError):
        CodecConfig(latent_channels=0)
    with pytest.raises(ConfigError):
        CodecConfig(max_depth_m=-1.0)
    assert CodecConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(CodecError):
        CodecConfig.from_dict({"bogus": 1})


def test_pca_init_makes_the_linear_path_an_autoencoder() -> None:
    torch.manual_seed(0)
    # smooth images: low-dimensional patches, which a full-rank PCA reproduces exactly
    base = torch.rand(2, 3, 6, 8)
    rgb = torch.nn.functional.interpolate(base, size=(24, 32), mode="bilinear")
    codec = Codec(CodecConfig(latent_channels=48, encoder_width=4, width=4, inner_width=4))
    codec.init_linear_from_pca(rgb)
    z = codec.encode(rgb)
    h, w = z.shape[-2:]
    with torch.no_grad():
        out, _ = codec.decode(z, torch.ones(2, h, w, dtype=torch.bool), torch.ones(2, h, w), 24, 32)
    assert torch.allclose(out, rgb, atol=1e-4)


def test_preview_rgb_is_the_mean_colour_of_the_linear_decode() -> None:
    torch.manual_seed(1)
    rgb = torch.rand(1, 3, 16, 16)
    codec = Codec(TINY)
    codec.init_linear_from_pca(rgb)
    z = codec.encode(torch.full((1, 3, 4, 4), 0.3))  # one flat cell
    preview = codec.preview_rgb(z[0].permute(1, 2, 0).reshape(-1, TINY.latent_channels))
    lin = torch.nn.functional.pixel_shuffle(codec.decoder.linear(z), TINY.stride)
    assert torch.allclose(preview[0], lin[0].mean(dim=(1, 2)).clamp(0, 1), atol=1e-5)
    assert preview.min() >= 0 and preview.max() <= 1


def test_weights_round_trip_bit_exact(tmp_path: Path) -> None:
    codec = _tiny(3)
    path = tmp_path / "w.safetensors"
    save_codec(codec, path, {"steps": 7})
    loaded = load_codec(path, device="cpu")
    assert loaded.config == codec.config
    assert loaded.codec_id == codec.codec_id
    assert loaded.codec_id.startswith("mirage-codec-v1-")
    for (k, a), (k2, b) in zip(
        sorted(codec.state_dict().items()), sorted(loaded.state_dict().items()), strict=True
    ):
        assert k == k2 and torch.equal(a, b)
    side = json.loads(sidecar_path(path).read_text())
    assert side["steps"] == 7 and side["architecture"] == TINY.to_dict()
    assert side["codec_id"] == codec.codec_id
    rgb = torch.rand(1, 3, 20, 28)
    assert torch.equal(codec.encode(rgb), loaded.encode(rgb))


def test_codec_id_depends_on_weights() -> None:
    assert _tiny(0).codec_id != _tiny(1).codec_id
    assert _tiny(0).codec_id == _tiny(0).codec_id


def test_refuses_missing_corrupt_and_mismatched_files(tmp_path: Path) -> None:
    codec = _tiny()
    path = tmp_path / "w.safetensors"
    save_codec(codec, path, {})
    good = path.read_bytes()
    with pytest.raises(CodecError, match="not found"):
        load_codec(tmp_path / "missing.safetensors")
    # truncated
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CodecError):
        load_codec(path)
    # garbage header
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(CodecError):
        load_codec(path)
    # a flipped bit inside the tensor data fails the checksum
    flipped = bytearray(good)
    flipped[-5] ^= 0x10
    path.write_bytes(bytes(flipped))
    with pytest.raises(CodecError, match="checksum"):
        load_codec(path)
    # sidecar describing another architecture
    path.write_bytes(good)
    side = sidecar_path(path)
    info = json.loads(side.read_text())
    info["architecture"]["latent_channels"] = 32
    side.write_text(json.dumps(info))
    with pytest.raises(CodecError, match="architecture"):
        load_codec(path)


def test_refuses_other_format_version_and_tensor_mismatch(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    codec = _tiny()
    tensors = {k: v.contiguous() for k, v in codec.state_dict().items()}
    meta = {"format": "mirage-codec", "format_version": "99", "architecture": "{}"}
    path = tmp_path / "v99.safetensors"
    save_file(tensors, path, metadata=meta)
    with pytest.raises(CodecError, match="version"):
        load_codec(path)
    # architecture says 16 channels, tensors are the tiny model's
    meta = {
        "format": "mirage-codec",
        "format_version": "1",
        "architecture": json.dumps(CodecConfig().to_dict()),
    }
    path = tmp_path / "mismatch.safetensors"
    save_file(tensors, path, metadata=meta)
    with pytest.raises(CodecError, match="do not match"):
        load_codec(path)
    path = tmp_path / "foreign.safetensors"
    save_file(tensors, path)
    with pytest.raises(CodecError, match="not a mirage codec"):
        load_codec(path)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights not built yet")
def test_shipped_default_weights_load_and_are_small() -> None:
    assert DEFAULT_WEIGHTS.stat().st_size <= 20 * 1024 * 1024
    codec = load_codec(None, device="cpu")
    assert not codec.training
    assert sidecar_path(DEFAULT_WEIGHTS).is_file()


def test_push_pull_fill_keeps_covered_cells_and_fills_holes_smoothly() -> None:
    from mirage_ros.core.fill import push_pull_fill

    z = torch.zeros(1, 2, 8, 12)
    z[:, 0, :, :6] = 1.0
    z[:, 1] = torch.linspace(0, 1, 12)
    cov = torch.ones(1, 1, 8, 12)
    cov[:, :, 2:6, 4:9] = 0
    filled = push_pull_fill(z * cov, cov)
    assert torch.equal(filled[:, :, cov[0, 0] > 0], (z * cov)[:, :, cov[0, 0] > 0])
    holes = filled[:, :, cov[0, 0] == 0]
    assert torch.isfinite(holes).all()
    assert holes.min() >= 0 and holes.max() <= 1  # a convex mix of covered values
    assert push_pull_fill(z, torch.zeros(1, 1, 8, 12)).abs().max() == 0  # nothing to fill from


def test_confidence_head_starts_as_the_decoders_confidence_and_then_changes_it() -> None:
    import dataclasses

    base = _tiny(5)
    with_head = Codec(dataclasses.replace(TINY, confidence_width=4)).eval()
    missing, unexpected = with_head.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("confidence.") for k in missing)
    z = torch.randn(2, TINY.latent_channels, 6, 7)
    cov = torch.rand(2, 6, 7) > 0.3
    depth = torch.where(cov, 1 + torch.rand(2, 6, 7), torch.nan)
    rgb0, conf0 = base.decode(z, cov, depth, 23, 27)  # odd sizes: the head works at half res
    rgb1, conf1 = with_head.decode(z, cov, depth, 23, 27)
    assert torch.equal(rgb0, rgb1)  # the head never touches the image
    assert torch.allclose(conf0, conf1, atol=1e-6)  # its last layer starts at zero
    assert with_head.codec_id != base.codec_id  # but it is part of the weights
    assert with_head.confidence is not None
    with torch.no_grad():
        with_head.confidence.out.weight.fill_(0.3)
    _, conf2 = with_head.decode(z, cov, depth, 23, 27)
    assert conf2.shape == conf0.shape and not torch.equal(conf2, conf0)
    assert conf2.min() >= 0.0 and conf2.max() <= 1.0


def test_confidence_head_round_trips_and_old_files_have_none(tmp_path: Path) -> None:
    import dataclasses

    torch.manual_seed(1)
    codec = Codec(dataclasses.replace(TINY, confidence_width=4)).eval()
    save_codec(codec, tmp_path / "h.safetensors")
    loaded = load_codec(tmp_path / "h.safetensors", device="cpu")
    assert loaded.config.confidence_width == 4 and loaded.codec_id == codec.codec_id
    assert _tiny().confidence is None and TINY.confidence_width == 0
    with pytest.raises(ConfigError):
        CodecConfig(confidence_width=-1)
    with pytest.raises(ConfigError):
        CodecConfig(confidence_width=True)  # type: ignore[arg-type]


def test_offset_input_starts_neutral_and_then_shifts_the_image() -> None:
    import dataclasses

    base = _tiny(6)
    cfg = dataclasses.replace(TINY, offset_input=True)
    aware = Codec(cfg).eval()
    state = base.state_dict()
    w = state["decoder.inp.weight"]
    grown = torch.zeros(w.shape[0], w.shape[1] + 2, *w.shape[2:])
    grown[:, : w.shape[1]] = w
    aware.load_state_dict(state | {"decoder.inp.weight": grown})
    z = torch.randn(1, TINY.latent_channels, 5, 6)
    cov = torch.rand(1, 5, 6) > 0.2
    depth = torch.where(cov, torch.full((1, 5, 6), 2.0), torch.nan)
    off = torch.rand(1, 2, 5, 6) - 0.5
    ref, _ = base.decode(z, cov, depth, 20, 24)
    assert torch.allclose(aware.decode(z, cov, depth, 20, 24, off)[0], ref, atol=1e-6)
    assert torch.equal(base.decode(z, cov, depth, 20, 24, off)[0], ref)  # ignored without input
    with torch.no_grad():
        aware.decoder.inp.weight[:, -2:].fill_(0.5)
    moved, _ = aware.decode(z, cov, depth, 20, 24, off)
    centred, _ = aware.decode(z, cov, depth, 20, 24)  # None: every latent at its cell centre
    assert not torch.allclose(moved, centred)
    assert torch.equal(centred, aware.decode(z, cov, depth, 20, 24, torch.zeros_like(off))[0])
    with pytest.raises(ShapeError):
        aware.decode(z, cov, depth, 20, 24, off[:, :1])


def test_offset_warp_moves_the_decoded_image_by_the_offsets() -> None:
    import dataclasses

    base = _tiny(7)
    warped = Codec(dataclasses.replace(TINY, offset_warp=1.0)).eval()
    warped.load_state_dict(base.state_dict())
    assert warped.codec_id == base.codec_id  # an inference setting: no new weights
    z = torch.randn(1, TINY.latent_channels, 4, 6)
    cov = torch.ones(1, 4, 6, dtype=torch.bool)
    depth = torch.full((1, 4, 6), 2.0)
    off = torch.zeros(1, 2, 4, 6)
    off[:, 0] = 0.25  # one pixel right at stride 4
    ref, conf_ref = base.decode(z, cov, depth, 16, 24)
    out, conf = warped.decode(z, cov, depth, 16, 24, off)
    assert torch.allclose(out[..., 1:], ref[..., :-1], atol=1e-5)
    assert torch.allclose(conf[..., 1:], conf_ref[..., :-1], atol=1e-5)
    assert torch.equal(warped.decode(z, cov, depth, 16, 24)[0], ref)  # no offsets: no warp
    with pytest.raises(ConfigError):
        CodecConfig(offset_warp=-1.0)


def test_fine_features_put_each_sub_cell_in_its_own_channels() -> None:
    from mirage_ros.core.codec_nets import fine_channels, fine_features

    c = TINY.latent_channels
    z = torch.randn(2, c, 6, 8)
    cov = torch.rand(2, 6, 8) > 0.3
    off = torch.rand(2, 2, 6, 8) - 0.5
    f = fine_features(z, cov, off)
    assert f.shape == (2, fine_channels(c), 3, 4)
    per_cell = f.view(2, c + 3, 4, 3, 4)  # pixel_unshuffle: channel-major, then the 2x2 sub-cell
    for dy in (0, 1):
        for dx in (0, 1):
            sub = per_cell[:, :, 2 * dy + dx]
            m = cov[:, dy::2, dx::2]
            assert torch.equal(sub[:, :c], z[:, :, dy::2, dx::2] * m[:, None])
            assert torch.equal(sub[:, c], m.float())
            assert torch.equal(sub[:, c + 1 :], off[:, :, dy::2, dx::2] * m[:, None])
    with pytest.raises(ShapeError):
        fine_features(z[..., :7], cov[..., :7], off[..., :7])


def test_fine_render_input_starts_neutral_and_then_changes_the_image() -> None:
    import dataclasses

    from mirage_ros.core.codec_nets import fine_channels

    base = _tiny(7)
    fine_codec = Codec(dataclasses.replace(TINY, fine_render=True)).eval()
    state = base.state_dict()
    n_fine = fine_channels(TINY.latent_channels)
    for key in ("decoder.inp.weight", "decoder.linear.weight"):  # both paths see the fine render
        w = state[key]
        grown = torch.zeros(w.shape[0], w.shape[1] + n_fine, *w.shape[2:])
        grown[:, : w.shape[1]] = w
        state[key] = grown
    fine_codec.load_state_dict(state)
    z = torch.randn(1, TINY.latent_channels, 5, 6)
    cov = torch.rand(1, 5, 6) > 0.2
    depth = torch.where(cov, torch.full((1, 5, 6), 2.0), torch.nan)
    fine = torch.randn(1, n_fine, 5, 6)
    ref, _ = base.decode(z, cov, depth, 20, 24)
    assert torch.allclose(fine_codec.decode(z, cov, depth, 20, 24, None, fine)[0], ref, atol=1e-6)
    assert torch.equal(base.decode(z, cov, depth, 20, 24, None, fine)[0], ref)  # ignored
    zeros = torch.zeros_like(fine)
    for layer in (fine_codec.decoder.linear, fine_codec.decoder.inp):
        with torch.no_grad():
            layer.weight[:, -n_fine:].fill_(0.05)
        seen, _ = fine_codec.decode(z, cov, depth, 20, 24, None, fine)
        absent, _ = fine_codec.decode(z, cov, depth, 20, 24)  # None: as an all-zero fine render
        assert not torch.allclose(seen, absent)
        assert torch.equal(absent, fine_codec.decode(z, cov, depth, 20, 24, None, zeros)[0])
        with torch.no_grad():
            layer.weight[:, -n_fine:].fill_(0.0)
    with pytest.raises(ShapeError):
        fine_codec.decode(z, cov, depth, 20, 24, None, fine[:, :-1])
    with pytest.raises(ConfigError):
        CodecConfig(fine_render=1)  # type: ignore[arg-type]
