"""The codec training loop: autoencoder phase, then decoder training through the memory.

Phase 1 (``steps * ae_fraction`` steps): encoder + decoder as an autoencoder on random crops of
the training frames, with random latent holes (coverage 0, depth unknown) so the decoder learns
to imagine and the confidence head learns where it fails. Phase 2: the encoder is frozen, the
training sequences are streamed through real :class:`LatentSpatialMemory` objects
(:func:`build_memory_pool`), and the decoder learns to turn the rendered (fused, z-buffered,
partly empty) latent maps at held-out poses into the real frames; a share of autoencoder
samples keeps the full-coverage case sharp. The memory's fusion is not differentiable with
respect to the latents, so the encoder learns through the autoencoder term only. Phase 3
(``confidence_steps`` more steps, codecs with a confidence head only): encoder and decoder
frozen, the head learns to predict the error of the *final* image (clamped, never-seen pixels
filled) on the same batches.

Checkpoints are safetensors (model + AdamW state) with a JSON sidecar; never pickle. Data
sampling is drawn from ``np.random.default_rng([seed, step])``, so a resumed run sees the same
batches as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from mirage_ros.core.codec import Codec, CodecConfig, _atomic_write
from mirage_ros.core.codec_nets import fine_channels
from mirage_ros.core.errors import CodecError, ConfigError
from mirage_ros.train.data import FrameSet, MemorySample, build_memory_pool
from mirage_ros.train.losses import confidence_loss, reconstruction_loss

__all__ = ["TrainConfig", "Trainer", "load_checkpoint", "restore", "save_checkpoint"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one training run."""

    steps: int = 6000
    """Optimisation steps of the codec (phases 1 and 2; 0 with ``--init`` trains only phase 3)."""
    batch: int = 8
    """Crops per step."""
    crop_px: int = 128
    """Square crop size in pixels (a multiple of 4 * stride)."""
    lr: float = 2e-3
    """Peak learning rate (AdamW, cosine decay per phase)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    ae_fraction: float = 0.35
    """Share of the steps spent in the autoencoder phase."""
    memory_share: float = 0.75
    """In phase 2, share of each batch drawn from the memory pool."""
    hole_weight: float = 0.5
    """Photometric loss weight of pixels the memory does not cover (covered = 1)."""
    conf_weight: float = 0.1
    """Weight of the confidence BCE."""
    ssim_weight: float = 0.5
    """Weight of (1 - SSIM) beside the L1 term of the photometric loss."""
    seed: int = 0
    """Seed of the initialisation and of every batch."""
    checkpoint_every: int = 500
    """Write a resumable checkpoint every this many steps (0 = only at the end)."""
    confidence_steps: int = 0
    """Phase 3: steps after ``steps`` that train only the confidence head (codec frozen)."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.confidence_steps < 0 or self.batch < 1:
            raise ConfigError("steps and confidence_steps must be >= 0, batch >= 1")
        if self.total_steps < 1:
            raise ConfigError("nothing to train: steps + confidence_steps must be >= 1")
        if self.crop_px < 16 or self.crop_px % 16:
            raise ConfigError(f"crop_px must be a multiple of 16 >= 16, got {self.crop_px}")
        if not 0.0 <= self.ae_fraction <= 1.0 or not 0.0 <= self.memory_share <= 1.0:
            raise ConfigError("ae_fraction and memory_share must be in [0, 1]")
        if not (self.ssim_weight >= 0 and math.isfinite(self.ssim_weight)):
            raise ConfigError(f"ssim_weight must be >= 0, got {self.ssim_weight}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be > 0, got {self.lr}")

    @property
    def phase2_start(self) -> int:
        return round(self.steps * self.ae_fraction)

    @property
    def total_steps(self) -> int:
        """All steps of the run (phases 1-3)."""
        return self.steps + self.confidence_steps


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step >= cfg.steps:  # phase 3: a fresh schedule for the confidence head
        start, end, peak = cfg.steps, cfg.total_steps, cfg.lr
    elif step < cfg.phase2_start:
        start, end, peak = 0, cfg.phase2_start, cfg.lr
    else:
        start, end, peak = cfg.phase2_start, cfg.steps, cfg.lr * 0.5
    warm = min(100, max(1, (end - start) // 10))
    t = step - start
    if t < warm:
        return peak * (t + 1) / warm
    frac = (t - warm) / max(1, end - start - warm)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _random_holes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A coverage mask (h,w) bool: full, or with 1-3 random rectangular holes."""
    cov = np.ones((h, w), dtype=bool)
    if rng.random() < 0.25:
        return cov
    for _ in range(int(rng.integers(1, 4))):
        hh = int(rng.integers(max(1, h // 8), max(2, int(h * 0.8))))
        ww = int(rng.integers(max(1, w // 8), max(2, int(w * 0.8))))
        y, x = int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - ww + 1))
        cov[y : y + hh, x : x + ww] = False
    return cov


class Trainer:
    """Holds the codec, optimizer, data and step counter of one run."""

    def __init__(
        self,
        codec: Codec,
        framesets: Sequence[FrameSet],
        cfg: TrainConfig,
        memory_config: Any,
        device: torch.device,
    ) -> None:
        self.codec = codec.to(device)
        self.sets = list(framesets)
        self.cfg = cfg
        self.memory_config = memory_config
        self.device = device
        self.opt = torch.optim.AdamW(codec.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.pool: list[MemorySample] = []
        self.history: list[dict[str, float]] = []
        self.in_phase3 = False  # decoder frozen, only the confidence head learns
        if cfg.confidence_steps and codec.confidence is None:
            raise ConfigError("confidence_steps > 0 needs a codec with a confidence head")
        s = codec.config.stride
        self.crop_lat = cfg.crop_px // s
        for fs in self.sets:
            h, w = fs.depth_lat.shape[1:]
            if h < self.crop_lat or w < self.crop_lat:
                raise ConfigError(
                    f"{fs.name}: frames {h * s}x{w * s} are smaller than the {cfg.crop_px} px crop"
                )

    # ------------------------------------------------------------------ data
    def _crop(self, rng: np.random.Generator, fs: FrameSet) -> tuple[int, int]:
        h, w = fs.depth_lat.shape[1:]
        return int(rng.integers(0, h - self.crop_lat + 1)), int(
            rng.integers(0, w - self.crop_lat + 1)
        )

    def _target(self, fs: FrameSet, i: int, y: int, x: int) -> Tensor:
        s, c = self.codec.config.stride, self.cfg.crop_px
        img = fs.rgb[i, y * s : y * s + c, x * s : x * s + c]
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0

    def _ae_batch(self, rng: np.random.Generator, n: int) -> tuple[Tensor, ...]:
        rgbs, covs, depths = [], [], []
        cl = self.crop_lat
        for _ in range(n):
            fs = self.sets[int(rng.integers(len(self.sets)))]
            i = int(rng.integers(len(fs)))
            y, x = self._crop(rng, fs)
            rgbs.append(self._target(fs, i, y, x))
            d = fs.depth_lat[i, y : y + cl, x : x + cl]
            cov = _random_holes(rng, cl, cl) & (d > 0)
            covs.append(torch.from_numpy(cov))
            depths.append(torch.from_numpy(np.where(cov, d, np.nan).astype(np.float32)))
        return torch.stack(rgbs), torch.stack(covs), torch.stack(depths)

    def _memory_batch(
        self, rng: np.random.Generator, n: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        lats, covs, depths, rgbs, offs, fines = [], [], [], [], [], []
        cl = self.crop_lat
        for _ in range(n):
            smp = self.pool[int(rng.integers(len(self.pool)))]
            fs = self.sets[smp.set_index]
            y, x = self._crop(rng, fs)
            lats.append(smp.latents[:, y : y + cl, x : x + cl].float())
            covs.append(smp.coverage[y : y + cl, x : x + cl])
            depths.append(smp.depth_m[y : y + cl, x : x + cl])
            rgbs.append(self._target(fs, smp.frame_index, y, x))
            offs.append(smp.offset[:, y : y + cl, x : x + cl].float())
            if smp.fine is not None:
                fines.append(smp.fine[:, y : y + cl, x : x + cl].float())
        fine = torch.stack(fines) if len(fines) == n else None
        return (
            torch.stack(lats), torch.stack(covs), torch.stack(depths), torch.stack(rgbs),
            torch.stack(offs), fine,
        )  # fmt: skip

    # ------------------------------------------------------------------ phases
    def _enter_phase2(self) -> None:
        for p in self.codec.encoder.parameters():
            p.requires_grad_(False)
        self.codec.eval()
        rng = np.random.default_rng([self.cfg.seed, 7_777])
        configs = self.memory_config
        if not isinstance(configs, (list, tuple)):
            configs = [configs]
        # one pool per memory configuration (e.g. several voxel sizes), trained on together
        self.pool = [
            smp for mc in configs for smp in build_memory_pool(self.codec, self.sets, mc, rng)
        ]
        if not self.pool:
            raise ConfigError("the memory pool is empty (sequences too short?)")

    def _enter_phase3(self) -> None:
        for p in self.codec.decoder.parameters():
            p.requires_grad_(False)
        self.in_phase3 = True

    def train_step(self) -> dict[str, float]:
        """One optimisation step at ``self.step`` (deterministic given step and seed)."""
        cfg, dev, c = self.cfg, self.device, self.cfg.crop_px
        in_phase2 = self.step >= cfg.phase2_start
        if in_phase2 and not self.pool:
            self._enter_phase2()
        in_phase3 = self.step >= cfg.steps
        if in_phase3 and not self.in_phase3:
            self._enter_phase3()
        rng = np.random.default_rng([cfg.seed, self.step])
        n_mem = round(cfg.batch * cfg.memory_share) if in_phase2 else 0
        n_ae = cfg.batch - n_mem
        self.codec.decoder.train()
        lat_parts, cov_parts, dep_parts, tgt_parts, off_parts = [], [], [], [], []
        fine_parts: list[Tensor] = []  # only for codecs with fine_render
        use_fine = self.codec.config.fine_render
        n_fine = fine_channels(self.codec.config.latent_channels)
        if n_ae:
            rgb, cov, dep = self._ae_batch(rng, n_ae)
            rgb = rgb.to(dev)
            if in_phase2:
                with torch.no_grad():
                    z = self.codec.encode(rgb)
            else:
                self.codec.encoder.train()
                z = self.codec.encode(rgb)
            lat_parts.append(z)
            cov_parts.append(cov.to(dev))
            dep_parts.append(dep.to(dev))
            tgt_parts.append(rgb)
            off_parts.append(torch.zeros_like(z[:, :2]))  # the encoder's own grid: centred
            if use_fine:  # autoencoder crops have no fine render
                fine_parts.append(z.new_zeros(z.shape[0], n_fine, *z.shape[2:]))
        if n_mem:
            z, cov, dep, rgb, off, fine_mem = self._memory_batch(rng, n_mem)
            lat_parts.append(z.to(dev))
            cov_parts.append(cov.to(dev))
            dep_parts.append(dep.to(dev))
            tgt_parts.append(rgb.to(dev))
            off_parts.append(off.to(dev))
            if use_fine:
                zero = z.new_zeros(z.shape[0], n_fine, *z.shape[2:])
                fine_parts.append((fine_mem if fine_mem is not None else zero).to(dev))
        lat, cov, dep = torch.cat(lat_parts), torch.cat(cov_parts), torch.cat(dep_parts)
        target, offset = torch.cat(tgt_parts), torch.cat(off_parts)
        fine = torch.cat(fine_parts) if use_fine else None
        s = self.codec.config.stride
        cov_full = F.interpolate(cov[:, None].float(), scale_factor=s, mode="nearest") > 0.5
        if in_phase3:
            self.codec.decoder.eval()
            with torch.no_grad():
                out, logit = self.codec.decode_logits(lat, cov, dep, c, c, offset, fine)
            assert self.codec.confidence is not None
            self.codec.confidence.train()
            rgb, logit = self.codec.finish(out, logit, cov, dep)  # grad reaches the head only
            loss, info = confidence_loss(rgb, logit, target, cov_full)
        else:
            out, logit = self.codec.decode_logits(lat, cov, dep, c, c, offset, fine)
            loss, info = reconstruction_loss(
                out, logit, target, cov_full, cfg.hole_weight, cfg.ssim_weight, cfg.conf_weight
            )
        lr = _lr_at(cfg, self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.codec.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        phase = 3.0 if in_phase3 else 2.0 if in_phase2 else 1.0
        info |= {"lr": lr, "phase": phase, "step": float(self.step)}
        self.history.append(info)
        return info

    def run(
        self,
        out_dir: Path,
        on_step: Callable[[dict[str, float]], None] | None = None,
        extra_meta: dict[str, Any] | None = None,
    ) -> None:
        """Train until ``cfg.total_steps``, checkpointing every ``cfg.checkpoint_every`` steps."""
        total = self.cfg.total_steps
        if self.step >= self.cfg.phase2_start and not self.pool and self.step < total:
            self._enter_phase2()
        while self.step < total:
            info = self.train_step()
            if on_step is not None:
                on_step(info)
            every = self.cfg.checkpoint_every
            if every and self.step % every == 0 and self.step < total:
                save_checkpoint(self, out_dir / "checkpoint.safetensors", extra_meta)
        save_checkpoint(self, out_dir / "checkpoint.safetensors", extra_meta)


def save_checkpoint(trainer: Trainer, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Model + AdamW state as safetensors, step/config/param groups as JSON (atomic)."""
    from safetensors.torch import save as st_save

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.codec.state_dict().items()
    }
    state = trainer.opt.state_dict()
    for idx, st in state["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, Tensor) else torch.tensor(val)
            tensors[f"opt.{idx}.{key}"] = t.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    meta = {
        "format": "mirage-codec-checkpoint",
        "step": trainer.step,
        "codec": trainer.codec.config.to_dict(),
        "train": dataclasses.asdict(trainer.cfg),
        "param_groups": groups,
        "extra": extra or {},
    }
    _atomic_write(path, st_save(tensors))
    _atomic_write(path.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read a checkpoint's JSON and tensors (CodecError on anything missing or corrupt)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        raise CodecError(f"checkpoint {path} (and its .json) not found")
    try:
        meta = json.loads(side.read_text())
        tensors = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CodecError(f"checkpoint {path} is unreadable: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != "mirage-codec-checkpoint":
        raise CodecError(f"{side} is not a mirage codec checkpoint")
    return meta, tensors


def restore(trainer: Trainer, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """Load model + optimizer state + step from a checkpoint into a trainer built like it."""
    if CodecConfig.from_dict(meta["codec"]) != trainer.codec.config:
        raise CodecError("checkpoint architecture differs from the requested model")
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        trainer.codec.load_state_dict(model)
    except RuntimeError as exc:
        raise CodecError(f"checkpoint model tensors do not fit: {exc}") from exc
    opt_state: dict[int, dict[str, Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, key = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[key] = v.to(trainer.device)
    trainer.opt.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    trainer.step = int(meta["step"])
    if trainer.step >= trainer.cfg.phase2_start:
        for p in trainer.codec.encoder.parameters():
            p.requires_grad_(False)
    if trainer.step >= trainer.cfg.steps:
        trainer._enter_phase3()
