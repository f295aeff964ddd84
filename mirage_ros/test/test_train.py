"""Training smoke tests: tiny model, tiny frames, a few steps on CPU; checkpoints and resume."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mirage_ros.core.codec import Codec, load_codec
from mirage_ros.core.config import MemoryConfig
from mirage_ros.train import TINY_CODEC
from mirage_ros.train.data import build_memory_pool, framesets_from_frames
from mirage_ros.train.loop import (
    TrainConfig,
    Trainer,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from mirage_ros.train.losses import spearman, ssim_map


class _Frame:
    def __init__(self, i: int, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, T: np.ndarray):
        self.index, self.stamp_ns = i, 1_700_000_000_000_000_000 + i * 100_000_000
        self.rgb, self.depth_m, self.K, self.T_world_camera = rgb, depth, K, T


def wall_frames(n: int = 12, width: int = 64, height: int = 48) -> list[_Frame]:
    """A camera sliding along a textured wall 2 m ahead (analytic rgb and depth)."""
    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for i in range(n):
        cam_x = 0.05 * i
        x = cam_x + (u - K[0, 2]) / f * 2.0
        y = (v - K[1, 2]) / f * 2.0
        rgb = np.stack(
            [
                0.5 + 0.4 * np.sin(7 * x),
                0.5 + 0.4 * np.cos(5 * y),
                0.5 + 0.3 * np.sin(3 * x + 4 * y),
            ],
            axis=-1,
        )
        T = np.eye(4)
        T[0, 3] = cam_x
        depth = np.full((height, width), 2.0, dtype=np.float32)
        frames.append(_Frame(i, (rgb * 255).astype(np.uint8), depth, K, T))
    return frames


def _memory_config() -> MemoryConfig:
    return MemoryConfig(latent_channels=TINY_CODEC.latent_channels, device="cpu", max_memory_mb=8)


def test_memory_pool_renders_held_out_frames_with_coverage() -> None:
    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    codec = Codec(TINY_CODEC).eval()
    pool = build_memory_pool(codec, [fs], _memory_config(), np.random.default_rng(0))
    stream = [p for p in pool if p.kind == "stream"]
    assert len(stream) == 3  # every 4th of 12 frames is held out
    assert {p.kind for p in pool} == {"stream", "window"}
    # later held-out frames of a slow slide are mostly covered by earlier frames
    assert stream[-1].coverage.float().mean() > 0.5
    for p in pool:
        assert p.latents.shape == (TINY_CODEC.latent_channels, 12, 16)
        assert torch.isnan(p.depth_m[~p.coverage]).all()
        assert (p.latents.float()[:, ~p.coverage] == 0).all()


def test_several_voxel_sizes_give_one_pool_each() -> None:
    import dataclasses

    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    cfg = TrainConfig(steps=2, batch=2, crop_px=32, ae_fraction=0.5)
    coarse = _memory_config()
    fine = dataclasses.replace(coarse, voxel_size_m=0.02)
    sizes = []
    for configs in ([coarse], [fine], [coarse, fine]):
        trainer = Trainer(Codec(TINY_CODEC), [fs], cfg, configs, torch.device("cpu"))
        trainer._enter_phase2()
        sizes.append(len(trainer.pool))
    assert sizes[2] == sizes[0] + sizes[1]


def test_few_steps_train_checkpoint_and_resume_match(tmp_path: Path) -> None:
    torch.manual_seed(0)
    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    cfg = TrainConfig(steps=4, batch=2, crop_px=32, ae_fraction=0.5, checkpoint_every=2)

    def fresh() -> Trainer:
        torch.manual_seed(0)
        return Trainer(Codec(TINY_CODEC), [fs], cfg, _memory_config(), torch.device("cpu"))

    full = fresh()
    full.run(tmp_path / "full")
    assert full.step == 4 and full.pool  # phase 2 ran through the memory
    assert all(np.isfinite(h["loss"]) for h in full.history)
    # interrupted after the step-2 checkpoint, then resumed
    half = fresh()
    half.train_step()
    half.train_step()
    save_checkpoint(half, tmp_path / "half" / "checkpoint.safetensors")
    meta, tensors = load_checkpoint(tmp_path / "half")
    assert meta["step"] == 2
    resumed = fresh()
    restore(resumed, meta, tensors)
    resumed.run(tmp_path / "resumed")
    for (k, a), (_, b) in zip(
        sorted(full.codec.state_dict().items()),
        sorted(resumed.codec.state_dict().items()),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-6), k


def test_training_reduces_loss_on_a_fixed_batch() -> None:
    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    cfg = TrainConfig(steps=30, batch=2, crop_px=32, ae_fraction=1.0, lr=3e-3)
    torch.manual_seed(0)
    trainer = Trainer(Codec(TINY_CODEC), [fs], cfg, _memory_config(), torch.device("cpu"))
    for _ in range(30):
        trainer.train_step()
    first = np.mean([h["loss"] for h in trainer.history[:5]])
    last = np.mean([h["loss"] for h in trainer.history[-5:]])
    assert last < first


def _train_parser(monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """`mirage train`'s parser, with the synthetic scenes replaced by 8-frame wall slides."""
    from mirage_ros.train import add_arguments, data

    def fake_synthetic(seeds, frames, width, height, stride, **_kw):  # type: ignore[no-untyped-def]
        return [
            framesets_from_frames(f"wall-{s}", wall_frames(8, width, height), stride) for s in seeds
        ]

    monkeypatch.setattr(data, "synthetic_framesets", fake_synthetic)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_train_command_writes_weights_and_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirage_ros.train import run

    parser = _train_parser(monkeypatch)
    out = tmp_path / "run"
    argv = ["--out", str(out), "--tiny", "--steps", "3", "--batch", "2", "--crop", "32"]
    argv += ["--resolution", "64x48", "--scenes", "1", "--device", "cpu", "--no-progress"]
    argv += ["--checkpoint-every", "2"]
    assert run(parser.parse_args(argv)) == 0
    codec = load_codec(out / "codec.safetensors", device="cpu")
    assert codec.config == TINY_CODEC
    side = json.loads((out / "codec.json").read_text())
    assert side["training"]["steps"] == 3
    assert side["training"]["data"]["synthetic_seeds"] == [1000]
    assert side["codec_id"] == codec.codec_id
    # resume a finished run from its checkpoint: nothing left to do, same weights out
    args = parser.parse_args(
        ["--out", str(tmp_path / "again"), "--resume", str(out), "--no-progress"]
    )
    assert run(args) == 0
    assert load_codec(tmp_path / "again" / "codec.safetensors").codec_id == codec.codec_id


def test_ssim_of_identical_images_is_one_and_spearman_sane() -> None:
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(ssim_map(x, x), torch.ones(1, 1, 16, 16), atol=1e-5)
    a = np.arange(10.0)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)


def test_evaluate_script_reports_every_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mirage_ros.train.evaluate as ev
    from mirage_ros.core.codec import save_codec

    def fake_synthetic(seeds, frames, width, height, stride, **_kw):  # type: ignore[no-untyped-def]
        return [
            framesets_from_frames(f"wall-{s}", wall_frames(10, width, height), stride)
            for s in seeds
        ]

    monkeypatch.setattr(ev, "synthetic_framesets", fake_synthetic)
    torch.manual_seed(0)
    codec = Codec(TINY_CODEC)
    with torch.no_grad():  # non-zero confidence head so the ranks vary
        for p in codec.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_codec(codec, tmp_path / "w.safetensors", {})
    res = ev.evaluate(
        str(tmp_path / "w.safetensors"),
        [1],
        10,
        64,
        48,
        holdout=3,
        revisit_age_s=0.15,
        time_decode=False,
    )
    assert res["n_recent_psnr"] + res["n_revisit_psnr"] == 3
    assert np.isfinite(res["spearman_uncertainty_error"])
    assert res["protocol"]["texture_set"] == "test"


def test_confidence_phase_trains_only_the_head_and_resumes(tmp_path: Path) -> None:
    import dataclasses

    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    codec_cfg = dataclasses.replace(TINY_CODEC, confidence_width=4)
    cfg = TrainConfig(steps=2, batch=2, crop_px=32, ae_fraction=0.5, confidence_steps=3)

    def fresh() -> Trainer:
        torch.manual_seed(0)
        return Trainer(Codec(codec_cfg), [fs], cfg, _memory_config(), torch.device("cpu"))

    full = fresh()
    for _ in range(2):
        full.train_step()
    before = {k: v.clone() for k, v in full.codec.state_dict().items()}
    full.run(tmp_path / "full")
    assert full.step == 5 and [h["phase"] for h in full.history][2:] == [3.0, 3.0, 3.0]
    assert all(np.isfinite(h["conf_bce"]) for h in full.history)
    after = full.codec.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("confidence.") for k in changed)
    # interrupted in phase 3, then resumed: same weights as the uninterrupted run
    half = fresh()
    for _ in range(3):
        half.train_step()
    save_checkpoint(half, tmp_path / "half" / "checkpoint.safetensors")
    resumed = fresh()
    restore(resumed, *load_checkpoint(tmp_path / "half"))
    resumed.run(tmp_path / "resumed")
    for k, v in full.codec.state_dict().items():
        assert torch.allclose(v, resumed.codec.state_dict()[k], atol=1e-6), k


def test_confidence_steps_need_a_head_and_something_to_train() -> None:
    from mirage_ros.core.errors import ConfigError

    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    with pytest.raises(ConfigError):
        TrainConfig(steps=0, confidence_steps=0)
    cfg = TrainConfig(steps=0, batch=2, crop_px=32, confidence_steps=2)
    with pytest.raises(ConfigError, match="confidence head"):
        Trainer(Codec(TINY_CODEC), [fs], cfg, _memory_config(), torch.device("cpu"))


def test_ssim_weight_sets_the_share_of_the_structural_term() -> None:
    from mirage_ros.core.errors import ConfigError

    with pytest.raises(ConfigError, match="ssim_weight"):
        TrainConfig(ssim_weight=-1.0)
    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    first_loss = {}
    for w in (0.0, 2.0):
        cfg = TrainConfig(steps=1, batch=2, crop_px=32, ae_fraction=1.0, ssim_weight=w)
        torch.manual_seed(0)
        trainer = Trainer(Codec(TINY_CODEC), [fs], cfg, _memory_config(), torch.device("cpu"))
        first_loss[w] = trainer.train_step()["loss"]
    # same weights, same batch: only the (1 - SSIM) term, positive for an untrained codec, differs
    assert first_loss[2.0] > first_loss[0.0] + 0.1


def _train_from_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str]
) -> tuple[Codec, Codec]:
    """`mirage train --init` (a random tiny codec, saved with a sidecar) with these options on
    8-frame wall slides -> (init codec, trained codec)."""
    from mirage_ros.core.codec import save_codec
    from mirage_ros.train import run

    parser = _train_parser(monkeypatch)
    torch.manual_seed(0)
    init = Codec(TINY_CODEC).eval()
    save_codec(init, tmp_path / "init.safetensors", {"training": {"steps": 11}, "note": "kept"})
    argv = ["--out", str(tmp_path / "run"), "--init", str(tmp_path / "init.safetensors")]
    argv += ["--batch", "2", "--crop", "32", "--resolution", "64x48", "--scenes", "1"]
    argv += ["--device", "cpu", "--no-progress", *options]
    assert run(parser.parse_args(argv)) == 0
    return init, load_codec(tmp_path / "run" / "codec.safetensors", device="cpu")


def test_train_command_adds_a_confidence_head_and_offsets_to_init_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ["--steps", "0", "--confidence-width", "4", "--confidence-steps", "2"]
    init, codec = _train_from_init(tmp_path, monkeypatch, [*options, "--offset-input"])
    assert codec.config.confidence_width == 4 and codec.config.offset_input
    inp = codec.state_dict()["decoder.inp.weight"]
    n_old = init.state_dict()["decoder.inp.weight"].shape[1]
    assert inp.shape[1] == n_old + 2 and (inp[:, n_old:] == 0).all()  # new inputs start at 0
    for k, v in init.state_dict().items():  # the codec itself is unchanged
        mine = codec.state_dict()[k]
        assert torch.equal(v, mine[:, :n_old] if k == "decoder.inp.weight" else mine), k
    side = json.loads((tmp_path / "run" / "codec.json").read_text())
    assert side["training"]["steps"] == 2 and side["init_training"] == {"steps": 11}
    assert side["note"] == "kept" and side["init_codec_id"] == init.codec_id


def test_train_command_trains_a_new_decoder_of_another_size_on_the_init_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ["--steps", "2", "--ae-fraction", "0"]
    options += ["--decoder-width", "12", "--head-channels", "6"]
    init, codec = _train_from_init(tmp_path, monkeypatch, options)
    assert (codec.config.width, codec.config.inner_width, codec.config.head_channels) == (12, 8, 6)
    assert codec.config.latent_channels == TINY_CODEC.latent_channels
    for k, v in init.encoder.state_dict().items():  # frozen in phase 2: kept exactly
        assert torch.equal(v, codec.encoder.state_dict()[k]), k
    assert codec.decoder.inp.weight.shape[0] == 12


def test_fine_render_codecs_train_on_pools_that_carry_the_fine_render() -> None:
    import dataclasses

    from mirage_ros.core.codec_nets import fine_channels

    fs = framesets_from_frames("wall", wall_frames(), TINY_CODEC.stride)
    codec = Codec(dataclasses.replace(TINY_CODEC, fine_render=True))
    cfg = TrainConfig(steps=3, batch=4, crop_px=32, ae_fraction=0.0)
    trainer = Trainer(codec, [fs], cfg, _memory_config(), torch.device("cpu"))
    trainer._enter_phase2()
    n_fine = fine_channels(TINY_CODEC.latent_channels)
    for p in trainer.pool:
        assert p.fine is not None and p.fine.shape == (n_fine, 12, 16)
        assert (p.fine.float()[:, ~p.coverage] == 0).all() or p.coverage.all()
    assert any(bool(p.fine.abs().sum() > 0) for p in trainer.pool if p.fine is not None)
    before = codec.decoder.inp.weight[:, -n_fine:].clone()
    for _ in range(3):
        assert np.isfinite(trainer.train_step()["loss"])
    assert not torch.equal(before, codec.decoder.inp.weight[:, -n_fine:])  # the fine input learns
    plain = build_memory_pool(Codec(TINY_CODEC), [fs], _memory_config(), np.random.default_rng(0))
    assert all(p.fine is None for p in plain)


def test_train_command_adds_the_fine_render_to_init_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirage_ros.core.codec_nets import fine_channels

    init, codec = _train_from_init(
        tmp_path, monkeypatch, ["--steps", "0", "--confidence-width", "4", "--confidence-steps",
                                "1", "--fine-render"]
    )  # fmt: skip
    assert codec.config.fine_render and not init.config.fine_render
    for key in ("decoder.inp.weight", "decoder.linear.weight"):
        grown = codec.state_dict()[key]
        old = init.state_dict()[key]
        assert grown.shape[1] == old.shape[1] + fine_channels(TINY_CODEC.latent_channels)
        assert (grown[:, old.shape[1] :] == 0).all()  # new inputs start at 0: as the init
