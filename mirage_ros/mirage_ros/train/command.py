"""`mirage train`: train or fine-tune the latent codec (synthetic scenes and/or user rosbags)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mirage_ros.core.codec import Codec, CodecConfig, load_codec, save_codec
from mirage_ros.core.errors import ConfigError

__all__ = ["TINY_CODEC", "add_arguments", "run"]

#: the small model used by ``--tiny`` (smoke tests)
TINY_CODEC = CodecConfig(
    latent_channels=8, encoder_width=8, width=8, inner_width=8, head_channels=4
)


def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"resolution must look like 320x240, got {text!r}"
        ) from exc
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"resolution {text} is too small")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mirage train`."""
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--steps", type=int, default=6000, help="optimisation steps (default 6000)")
    parser.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    parser.add_argument("--crop", type=int, default=128, help="crop size in pixels (default 128)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument(
        "--resolution", type=_resolution, default=(320, 240), help="synthetic frames WxH"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of init and batches")
    parser.add_argument(
        "--scenes", type=int, default=8, help="synthetic training scenes (seeds 1000+)"
    )
    parser.add_argument("--first-scene-seed", type=int, default=1000, help="first scene seed")
    parser.add_argument("--frames", type=int, default=240, help="frames per synthetic scene")
    parser.add_argument("--camera-rate", type=float, default=5.0, help="synthetic camera Hz")
    parser.add_argument("--bag", nargs="+", default=[], help="rosbags (RGB-D + TF) to train on")
    parser.add_argument(
        "--no-synthetic", action="store_true", help="train on --bag data only (fine-tuning)"
    )
    parser.add_argument("--init", type=Path, help="start from these codec weights (fine-tune)")
    parser.add_argument("--resume", type=Path, help="resume from a checkpoint (file or --out dir)")
    parser.add_argument("--tiny", action="store_true", help="tiny model (smoke tests)")
    parser.add_argument(
        "--hole-fill", action="store_true", help="push-pull fill of empty latent cells (decoder)"
    )
    parser.add_argument("--latent-channels", type=int, default=16, help="latent channels C")
    parser.add_argument(
        "--image-fill-blend",
        type=float,
        help="never-seen pixels: weight of the fill vs the decoder's imagination (inference only)",
    )
    parser.add_argument(
        "--image-fill-iterations",
        type=int,
        help="Jacobi sweeps per level of that fill; 0 = push-pull (inference only)",
    )
    parser.add_argument(
        "--offset-input",
        action="store_true",
        help="the decoder also sees the render's sub-cell offsets (with --init: new inputs start "
        "at zero weight)",
    )
    parser.add_argument(
        "--offset-warp",
        type=float,
        help="shift the decoded image by this times the render's sub-cell offsets (trained with "
        "it in the loop; default: as --init, else 0)",
    )
    parser.add_argument(
        "--fine-render",
        action="store_true",
        help="the decoder also sees the memory rendered at twice the latent resolution (with "
        "--init: new inputs start at zero weight)",
    )
    for flag, what in (
        ("--decoder-width", "decoder body channels on the latent grid"),
        ("--decoder-inner-width", "decoder body channels at 1/2 and 1/4 of the latent grid"),
        ("--head-channels", "decoder channels at full resolution"),
    ):
        parser.add_argument(
            flag,
            type=int,
            help=f"{what} (default: as --init, else 48 / 64 / 8; with --init, another size "
            "trains a new decoder on the kept encoder)",
        )
    parser.add_argument(
        "--confidence-width",
        type=int,
        help="add a confidence head of this width (0 = none; default: as --init, else none)",
    )
    parser.add_argument(
        "--confidence-steps",
        type=int,
        default=0,
        help="phase 3: steps that train only the confidence head after --steps (default 0)",
    )
    parser.add_argument(
        "--ssim-weight",
        type=float,
        default=0.5,
        help="weight of (1 - SSIM) beside L1 in the photometric loss (default 0.5)",
    )
    parser.add_argument("--ae-fraction", type=float, default=0.35, help="autoencoder phase share")
    parser.add_argument(
        "--memory-share",
        type=float,
        default=0.75,
        help="phase 2: share of each batch rendered from memories (the rest are autoencoder "
        "crops; default 0.75)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint period")
    parser.add_argument(
        "--voxel-size",
        type=float,
        nargs="+",
        default=[0.05],
        help="memory voxel size(s) (m); several = one memory pool each, trained on together",
    )
    parser.add_argument(
        "--near-voxel-size",
        type=float,
        default=0.0,
        help="voxel size (m) of the training memories' near level (default 0: one level, as the "
        "shipped weights were trained)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load_init(codec: Codec, path: Path) -> None:
    """Start from the weights at ``path``. A confidence head they lack starts untrained; offset
    inputs they lack (``--offset-input``) start at zero weight, so the codec starts as theirs. A
    decoder of another size (``--decoder-width`` ...) starts untrained: only the encoder is kept
    (and a memory stored with the init weights stays readable)."""
    init = load_codec(path, device="cpu")
    state = init.state_dict()
    dec = ("width", "inner_width", "head_channels")
    if any(getattr(init.config, k) != getattr(codec.config, k) for k in dec):
        state = {k: v for k, v in state.items() if k.startswith("encoder.")}
        missing, unexpected = codec.load_state_dict(state, strict=False)
        if unexpected or any(k.startswith("encoder.") for k in missing):
            raise ConfigError(f"--init {path}: its encoder does not fit the requested codec")
        return
    for key in ("decoder.inp.weight", "decoder.linear.weight"):
        mine = codec.state_dict()[key]
        if state[key].shape[1] < mine.shape[1] and state[key].shape[2:] == mine.shape[2:]:
            grown = torch.zeros_like(mine)
            grown[:, : state[key].shape[1]] = state[key]
            state[key] = grown
    missing, unexpected = codec.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("confidence.") for k in missing):
        raise ConfigError(
            f"--init {path} does not fit the requested codec (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )


def _init_provenance(init: str | None) -> dict[str, Any]:
    """What the --init weights' sidecar recorded (their training becomes ``init_training``)."""
    from mirage_ros.core.codec import sidecar_path

    if not init or not sidecar_path(init).is_file():
        return {}
    try:
        info = json.loads(sidecar_path(init).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    own = ("format", "format_version", "architecture", "codec_id", "weights_file", "training")
    out = {k: v for k, v in info.items() if k not in own}
    if "training" in info:
        out["init_training"] = info["training"]
    out["init_codec_id"] = info.get("codec_id")
    return out


def run(args: argparse.Namespace) -> int:
    """Build data, train, write ``codec.safetensors`` + ``codec.json`` into ``--out``."""
    from mirage_ros.core.config import MemoryConfig, resolve_device
    from mirage_ros.train.data import bag_framesets, synthetic_framesets
    from mirage_ros.train.loop import TrainConfig, Trainer, load_checkpoint, restore

    t_start = time.time()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    resume_meta: dict[str, Any] | None = None
    tensors: dict[str, torch.Tensor] = {}
    if args.resume is not None:
        resume_meta, tensors = load_checkpoint(args.resume)
        codec_cfg = CodecConfig.from_dict(resume_meta["codec"])
        cfg = TrainConfig(**resume_meta["train"])
        data_args = resume_meta["extra"]["data"]
    else:
        if args.init is not None:
            codec_cfg = load_codec(args.init, device="cpu").config
        elif args.tiny:
            codec_cfg = TINY_CODEC
        else:
            codec_cfg = CodecConfig(latent_channels=args.latent_channels)
        overrides = {  # architecture options given on the command line (None: keep)
            "hole_fill": True if args.hole_fill else None,
            "image_fill_blend": args.image_fill_blend,
            "image_fill_iterations": args.image_fill_iterations,
            "offset_input": True if args.offset_input else None,
            "fine_render": True if args.fine_render else None,
            "offset_warp": args.offset_warp,
            "confidence_width": args.confidence_width,
            "width": args.decoder_width,
            "inner_width": args.decoder_inner_width,
            "head_channels": args.head_channels,
        }
        codec_cfg = dataclasses.replace(
            codec_cfg, **{k: v for k, v in overrides.items() if v is not None}
        )
        cfg = TrainConfig(
            steps=args.steps,
            batch=args.batch,
            crop_px=args.crop,
            lr=args.lr,
            ae_fraction=args.ae_fraction,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            confidence_steps=args.confidence_steps,
            ssim_weight=args.ssim_weight,
            memory_share=args.memory_share,
        )
        seeds = [args.first_scene_seed + i for i in range(0 if args.no_synthetic else args.scenes)]
        data_args = {
            "synthetic_seeds": seeds,
            "texture_set": "train",
            "resolution": list(args.resolution),
            "frames_per_scene": args.frames,
            "camera_rate_hz": args.camera_rate,
            "bags": [str(Path(b).resolve()) for b in args.bag],
            "voxel_size_m": args.voxel_size[0] if len(args.voxel_size) == 1 else args.voxel_size,
            "near_voxel_size_m": args.near_voxel_size,
            "init": str(args.init) if args.init else None,
        }
    if not data_args["synthetic_seeds"] and not data_args["bags"]:
        raise ConfigError("no training data: give --scenes > 0 or --bag")

    progress = not args.no_progress
    stride = codec_cfg.stride
    width, height = data_args["resolution"]
    t0 = time.time()
    sets = synthetic_framesets(
        data_args["synthetic_seeds"],
        data_args["frames_per_scene"],
        width,
        height,
        stride,
        texture_set="train",
        camera_rate_hz=data_args["camera_rate_hz"],
        progress=progress,
    )
    sets += bag_framesets(data_args["bags"], stride)
    data_s = time.time() - t0
    n_frames = sum(len(s) for s in sets)
    print(
        f"mirage train: {n_frames} frames in {len(sets)} sequences ({data_s:.1f} s)",
        file=sys.stderr,
    )

    torch.manual_seed(cfg.seed)
    codec = Codec(codec_cfg)
    if resume_meta is None:
        if data_args.get("init"):
            _load_init(codec, Path(data_args["init"]))
        else:
            sample = torch.cat([torch.from_numpy(s.rgb[:: max(1, len(s) // 8)]) for s in sets])
            codec.init_linear_from_pca(sample.permute(0, 3, 1, 2).float() / 255.0)
    voxels = data_args["voxel_size_m"]
    memory_configs = [
        MemoryConfig(
            voxel_size_m=v,
            near_voxel_size_m=float(data_args.get("near_voxel_size_m", 0.0)),  # resumed: as begun
            latent_channels=codec_cfg.latent_channels,
            device=str(device),
            max_memory_mb=512.0,
        )
        for v in (voxels if isinstance(voxels, list) else [voxels])
    ]
    trainer = Trainer(codec, sets, cfg, memory_configs, device)
    if resume_meta is not None:
        restore(trainer, resume_meta, tensors)
    extra = {"data": data_args}

    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.total_steps, initial=trainer.step, desc="train", unit="step")
    t_loop = time.time()
    first_step = trainer.step

    def on_step(info: dict[str, float]) -> None:
        if bar is None:
            return
        done = trainer.step - first_step
        fps = done * cfg.batch / max(1e-9, time.time() - t_loop)
        bar.update(1)
        bar.set_postfix(
            phase=int(info["phase"]),
            loss=f"{info['loss']:.4f}",
            psnr=f"{info['psnr_cov']:.1f}",
            fps=f"{fps:.0f}",
        )

    trainer.run(out, on_step=on_step, extra_meta=extra)
    if bar is not None:
        bar.close()
    loop_s = time.time() - t_loop
    tail = trainer.history[-200:]
    metrics = (
        {
            k: float(sum(h[k] for h in tail) / max(1, len(tail)))
            for k in ("loss", "l1", "conf_bce", "psnr_cov")
        }
        if tail
        else {}
    )
    codec.eval()
    sidecar = _init_provenance(data_args.get("init"))
    sidecar |= {
        "training": {
            "recipe": "mirage train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "",
            "steps": trainer.step,
            "train_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
            "data": data_args,
            "frames": n_frames,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "wall_time_s": {"data": data_s, "loop": loop_s, "total": time.time() - t_start},
            "final_metrics_last_200_steps": metrics,
            "memory_pool_samples": len(trainer.pool),
        }
    }
    save_codec(codec, out / "codec.safetensors", sidecar)
    print(json.dumps({"weights": str(out / "codec.safetensors"), **metrics}))
    return 0
