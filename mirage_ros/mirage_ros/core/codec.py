"""The learned latent codec: rgb -> latent map (encoder), latent map -> rgb + confidence (decoder).

Both nets are fully convolutional, so any resolution works (inputs are padded to a multiple of the
stride internally and cropped back). The latent grid is pixel-aligned with the image: latent cell
(i, j) summarises pixels [s*i, s*i+s) x [s*j, s*j+s), which is exactly the grid that
``geometry.scale_intrinsics(K, 1/s, 1/s)`` describes.

Each net has a *linear path* (space-to-depth -> 1x1 conv, and its transpose) that is initialised
from a PCA of image patches before training, plus a small non-linear residual body whose last layer
starts at zero; the decoder's body is a two-level U-Net on the latent grid with a masked global
context, so it can fill holes (imagination) and report a per-pixel confidence. Optional parts,
set by ``CodecConfig``: the decoder also sees the render's sub-cell offsets (``offset_input``),
the decoded image is moved by them (``offset_warp``, ``warp.py``), it also sees the memory
rendered at twice the latent resolution (``fine_render``), never-seen pixels are filled
from the seen ones (``image_fill_*``, ``fill.py``), and a small head corrects the confidence
from the final image (``confidence_width``). :meth:`Codec.finish` (clamp, fill, confidence
head) is shared by inference and training.

Weights are safetensors files with a JSON sidecar; :func:`load_codec` refuses missing, corrupt,
oversized or mismatched files with :class:`CodecError` and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from mirage_ros.core.codec_nets import (
    CodecConfig,
    ConfidenceHead,
    Decoder,
    Encoder,
    conv_bias,
    fine_channels,
)
from mirage_ros.core.errors import CodecError, ConfigError, ShapeError
from mirage_ros.core.fill import blend_image_fill, push_pull_fill, upsample_cells
from mirage_ros.core.warp import subcell_warp

__all__ = [
    "CODEC_FORMAT_VERSION",
    "DEFAULT_WEIGHTS",
    "MAX_WEIGHTS_BYTES",
    "Codec",
    "CodecConfig",
    "blend_image_fill",
    "load_codec",
    "push_pull_fill",
    "save_codec",
    "sidecar_path",
]

CODEC_FORMAT_VERSION = 1
#: refuse weights files larger than this (the shipped default is far smaller)
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024
#: the weights shipped inside the package
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "codec_default.safetensors"


def _resolve_device(name: str | torch.device) -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r} (use 'auto', 'cpu' or 'cuda[:N]')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return dev


def _pad_to(x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


class Codec(nn.Module):
    """Encoder + decoder with a stable ``codec_id`` derived from the weights."""

    def __init__(self, config: CodecConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else CodecConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.confidence: ConfidenceHead | None = (
            ConfidenceHead(self.config) if self.config.confidence_width > 0 else None
        )
        self._codec_id: str | None = None

    @property
    def codec_id(self) -> str:
        """'mirage-codec-v1-<sha256[:12] of the weights>' (recomputed after training changes)."""
        if self._codec_id is None or self.training:
            self._codec_id = f"mirage-codec-v{CODEC_FORMAT_VERSION}-{weights_digest(self)[:12]}"
        return self._codec_id

    def latent_shape(self, height: int, width: int) -> tuple[int, int]:
        s = self.config.stride
        return -(-height // s), -(-width // s)

    def encode(self, rgb: Tensor) -> Tensor:
        """rgb: (B,3,H,W) float in [0,1] -> latents (B,C,ceil(H/s),ceil(W/s)) float32."""
        if rgb.ndim != 4 or rgb.shape[1] != 3 or rgb.shape[2] < 1 or rgb.shape[3] < 1:
            raise ShapeError(f"encode expects rgb (B,3,H,W), got {tuple(rgb.shape)}")
        if not rgb.is_floating_point():
            raise ShapeError(f"encode expects float rgb in [0,1], got dtype {rgb.dtype}")
        dev = next(self.parameters()).device
        x = _pad_to(rgb.to(device=dev, dtype=torch.float32), self.config.stride)
        z: Tensor = self.encoder(x)
        return z

    def decode(
        self,
        latents: Tensor,
        coverage: Tensor,
        depth_m: Tensor,
        out_height: int,
        out_width: int,
        offset: Tensor | None = None,
        fine: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Latent map -> image and confidence.

        latents: (B,C,h,w) float; coverage: (B,h,w) bool; depth_m: (B,h,w) metres, NaN/0 unknown;
        (out_height, out_width) with ceil(out/s) or floor(out/s) equal to (h, w); offset:
        (B,2,h,w) the render's sub-cell offsets (used by codecs with ``offset_input`` or
        ``offset_warp``; None = every latent at its cell centre, as the encoder produces them);
        fine: (B, fine_channels(C), h, w) the render at twice the latent resolution
        (``codec_nets.fine_features``; used by codecs with ``fine_render``, None = absent).
        Returns rgb (B,3,out_height,out_width) in [0,1] and confidence (B,1,out_height,out_width)
        in [0,1].
        """
        rgb, logit = self.decode_logits(
            latents, coverage, depth_m, out_height, out_width, offset, fine
        )
        rgb, logit = self.finish(rgb, logit, coverage, depth_m)
        return rgb, torch.sigmoid(logit)

    def finish(
        self, rgb: Tensor, logit: Tensor, coverage: Tensor, depth_m: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The decoder's raw outputs -> the final image and confidence logit.

        rgb (B,3,H,W) unclamped and logit (B,1,H,W) from :meth:`decode_logits`; coverage and
        depth_m (B,h,w) on the latent grid as given to it. The image is clamped to [0,1] and its
        never-seen pixels filled (``image_fill_blend``); the confidence head, if the codec has
        one, then corrects the logit from that final image.
        """
        cfg = self.config
        rgb = rgb.clamp(0.0, 1.0)
        if cfg.image_fill_blend > 0.0:
            blend, its = cfg.image_fill_blend, cfg.image_fill_iterations
            rgb = blend_image_fill(rgb, coverage, cfg.stride, blend, its)
        if self.confidence is not None:
            height, width = rgb.shape[-2:]
            cov = coverage.to(rgb.device).bool()
            dfeat = self._depth_feature(depth_m.to(device=rgb.device, dtype=torch.float32), cov)
            cov_full = upsample_cells(cov[:, None].float(), cfg.stride, height, width)
            dfeat_full = upsample_cells(dfeat[:, None], cfg.stride, height, width)
            logit = self.confidence(rgb, logit, cov_full, dfeat_full)
        return rgb, logit

    def _depth_feature(self, depth_m: Tensor, coverage: Tensor) -> Tensor:
        """log(1+d)/log(1+max_depth_m) where covered with a valid depth, else 0 (B,h,w)."""
        m = self.config.max_depth_m
        valid = coverage & torch.isfinite(depth_m) & (depth_m > 0)
        dfeat = torch.log1p(depth_m.clamp(0.0, m)) / math.log1p(m)
        return torch.where(valid, dfeat, torch.zeros_like(dfeat))

    def decode_logits(
        self,
        latents: Tensor,
        coverage: Tensor,
        depth_m: Tensor,
        out_height: int,
        out_width: int,
        offset: Tensor | None = None,
        fine: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The decoder net alone: rgb unclamped, never-seen pixels not filled, and the decoder's
        confidence logit (training; :meth:`finish` turns them into :meth:`decode`'s output)."""
        cfg = self.config
        if latents.ndim != 4 or latents.shape[1] != cfg.latent_channels:
            raise ShapeError(
                f"decode expects latents (B,{cfg.latent_channels},h,w), got {tuple(latents.shape)}"
            )
        b, _, h, w = latents.shape
        if tuple(coverage.shape) != (b, h, w) or tuple(depth_m.shape) != (b, h, w):
            raise ShapeError(
                f"decode expects coverage and depth_m of shape {(b, h, w)}, got "
                f"{tuple(coverage.shape)} and {tuple(depth_m.shape)}"
            )
        s = cfg.stride
        ok_h = h in (-(-out_height // s), out_height // s)
        ok_w = w in (-(-out_width // s), out_width // s)
        if out_height < 1 or out_width < 1 or not (ok_h and ok_w):
            raise ShapeError(
                f"latent grid {h}x{w} does not match output {out_height}x{out_width} at stride {s}"
            )
        dev = next(self.parameters()).device
        z = latents.to(device=dev, dtype=torch.float32)
        cov = coverage.to(device=dev).bool()
        dfeat = self._depth_feature(depth_m.to(device=dev, dtype=torch.float32), cov)
        z = torch.where(cov[:, None], torch.nan_to_num(z), torch.zeros_like(z))
        z4 = _pad_to(z, 4)
        c4 = _pad_to(cov[:, None].float(), 4)
        d4 = _pad_to(dfeat[:, None], 4)
        o4 = None
        if offset is not None and (cfg.offset_input or cfg.offset_warp > 0.0):
            if tuple(offset.shape) != (b, 2, h, w):
                raise ShapeError(
                    f"decode expects offset of shape {(b, 2, h, w)}, got {tuple(offset.shape)}"
                )
            off = torch.nan_to_num(offset.to(device=dev, dtype=torch.float32)).clamp(-4.0, 4.0)
            o4 = _pad_to(torch.where(cov[:, None], off, torch.zeros_like(off)), 4)
        f4 = None
        if fine is not None and cfg.fine_render:
            n_fine = fine_channels(cfg.latent_channels)
            if tuple(fine.shape) != (b, n_fine, h, w):
                raise ShapeError(
                    f"decode expects fine of shape {(b, n_fine, h, w)}, got {tuple(fine.shape)}"
                )
            f = torch.nan_to_num(fine.to(device=dev, dtype=torch.float32))
            f4 = _pad_to(torch.where(cov[:, None], f, torch.zeros_like(f)), 4)
        rgb, logit = self.decoder(z4, c4, d4, o4, f4)
        if o4 is not None and cfg.offset_warp > 0.0:  # place each cell's content where it sits
            out = subcell_warp(torch.cat([rgb, logit], dim=1), o4, s, cfg.offset_warp)
            rgb, logit = out[:, :3], out[:, 3:]
        rgb, logit = rgb[:, :, : h * s, : w * s], logit[:, :, : h * s, : w * s]
        if h * s < out_height or w * s < out_width:
            pad = (0, max(0, out_width - w * s), 0, max(0, out_height - h * s))
            rgb, logit = F.pad(rgb, pad, mode="replicate"), F.pad(logit, pad, mode="replicate")
        return rgb[:, :, :out_height, :out_width], logit[:, :, :out_height, :out_width]

    def preview_rgb(self, latents: Tensor) -> Tensor:
        """Cheap per-voxel colour: latents (N,C) -> (N,3) in [0,1] (mean of the linear decode)."""
        if latents.ndim != 2 or latents.shape[1] != self.config.latent_channels:
            raise ShapeError(
                f"preview_rgb expects (N,{self.config.latent_channels}), got {tuple(latents.shape)}"
            )
        lin = self.decoder.linear
        s2 = self.config.stride**2
        weight = lin.weight.detach()[:, :, 0, 0].reshape(3, s2, -1).mean(dim=1)  # (3,C)
        bias = conv_bias(lin).detach().reshape(3, s2).mean(dim=1)
        z = latents.to(device=weight.device, dtype=torch.float32)
        return (z @ weight.T + bias).clamp(0.0, 1.0)

    @torch.no_grad()
    def init_linear_from_pca(self, rgb: Tensor) -> None:
        """Initialise both linear paths from a PCA of the s x s patches of rgb (B,3,H,W)."""
        s, c = self.config.stride, self.config.latent_channels
        x = F.pixel_unshuffle(_pad_to(rgb.float(), s), s)  # (B,3s²,h,w)
        patches = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).to(torch.float64)
        mean = patches.mean(dim=0)
        cov = torch.cov((patches - mean).T)
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        basis = vecs[:, -c:].flip(1) if c <= vecs.shape[1] else vecs.flip(1)
        n = basis.shape[1]
        dev = self.encoder.linear.weight.device
        w_enc = torch.zeros(c, x.shape[1], dtype=torch.float64)
        w_enc[:n] = basis.T
        self.encoder.linear.weight.copy_(w_enc[:, :, None, None].to(dev))
        conv_bias(self.encoder.linear).copy_((-(w_enc @ mean)).to(dev))
        self.decoder.linear.weight.copy_(w_enc.T[:, :, None, None].to(dev))
        conv_bias(self.decoder.linear).copy_(mean.to(dev))


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over the tensors (sorted names, dtype, shape, bytes), independent of metadata."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar next to a weights file: ``x.safetensors`` -> ``x.json``."""
    return Path(path).with_suffix(".json")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; weights are package data
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_codec(codec: Codec, path: str | Path, sidecar: dict[str, Any] | None = None) -> None:
    """Write codec weights (safetensors, architecture in its metadata) + JSON sidecar, atomically.

    ``sidecar`` holds free-form provenance (training data, steps, metrics); the architecture,
    format version and codec id are added (and override any same-named keys).
    """
    from safetensors.torch import save as st_save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in codec.state_dict().items()}
    codec_id = f"mirage-codec-v{CODEC_FORMAT_VERSION}-{weights_digest(codec)[:12]}"
    arch = json.dumps(codec.config.to_dict(), sort_keys=True)
    meta = {"format": "mirage-codec", "format_version": str(CODEC_FORMAT_VERSION)}
    meta |= {"architecture": arch, "codec_id": codec_id}
    _atomic_write(path, st_save(tensors, metadata=meta))
    info = dict(sidecar or {})
    info |= {"format": "mirage-codec", "format_version": CODEC_FORMAT_VERSION}
    info |= {"architecture": codec.config.to_dict(), "codec_id": codec_id}
    info["weights_file"] = path.name
    text = json.dumps(info, indent=2, sort_keys=True) + "\n"
    _atomic_write(sidecar_path(path), text.encode())


def _read_header(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise CodecError(f"weights file {path} is {size} bytes, over the {MAX_WEIGHTS_BYTES} limit")
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CodecError(f"weights file {path} is truncated ({size} bytes)")
        n = int.from_bytes(head, "little")
        if n <= 0 or n > min(size - 8, 16 * 1024 * 1024):
            raise CodecError(f"weights file {path} has a corrupt header (length {n})")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CodecError(f"weights file {path} has a corrupt header: {exc}") from exc
    if not isinstance(header, dict):
        raise CodecError(f"weights file {path} has a corrupt header")
    return header


def load_codec(path: str | Path | None = None, device: str | torch.device = "auto") -> Codec:
    """Load a codec from safetensors weights (None = the shipped default), in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not p.is_file():
        raise CodecError(f"codec weights not found: {p}")
    meta = _read_header(p).get("__metadata__") or {}
    if meta.get("format") != "mirage-codec":
        raise CodecError(f"{p} is not a mirage codec weights file")
    if meta.get("format_version") != str(CODEC_FORMAT_VERSION):
        raise CodecError(
            f"{p} has codec format version {meta.get('format_version')!r}; "
            f"this mirage_ros reads version {CODEC_FORMAT_VERSION}"
        )
    try:
        arch = json.loads(meta.get("architecture", ""))
    except json.JSONDecodeError as exc:
        raise CodecError(f"{p} has an unreadable architecture: {exc}") from exc
    if not isinstance(arch, dict):
        raise CodecError(f"{p} has an unreadable architecture")
    config = CodecConfig.from_dict(arch)
    side = sidecar_path(p)
    if side.is_file():
        try:
            info = json.loads(side.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CodecError(f"sidecar {side} is unreadable: {exc}") from exc
        arch_side = info.get("architecture") if isinstance(info, dict) else None
        if not isinstance(arch_side, dict) or CodecConfig.from_dict(arch_side) != config:
            raise CodecError(f"sidecar {side} describes another architecture than {p.name}")
    try:
        tensors = load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CodecError(f"weights file {p} is corrupt: {exc}") from exc
    codec = Codec(config)
    expected = {k: tuple(v.shape) for k, v in codec.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:4]
        raise CodecError(f"weights in {p} do not match the architecture (first differences {diff})")
    if any(not torch.isfinite(t).all() for t in tensors.values()):
        raise CodecError(f"weights in {p} contain NaN or inf")
    codec.load_state_dict(tensors)
    codec.eval()
    if meta.get("codec_id") != codec.codec_id:
        raise CodecError(f"weights in {p} fail their checksum (corrupted file?)")
    return codec.to(_resolve_device(device))
