"""Held-out quality of a codec through the memory on generated scenes never used in training.

Run: ``python -m mirage_ros.train.evaluate [--weights W] --seeds 1 2 3 --out eval.json``.
Protocol (a small version of the project's evaluation): each sequence (texture set "test",
seeds < 1000) is streamed in order; every ``--holdout``-th frame is not integrated and is
predicted from the memory as it is at that moment. A held-out view is a *revisit* when the
median age of its covered cells is above ``--revisit-age`` seconds (the place was seen only long
ago), else *recent*; uncovered pixels are *never-seen*. Reported: PSNR / SSIM (7x7 box window) on
covered pixels per class; PSNR on never-seen pixels of the decoder's fill vs a constant
mean-colour fill and vs ``cv2.inpaint`` (Telea) of the same prediction; Spearman correlation
between (1 - confidence) and the per-pixel absolute error; CPU decode time at 320x240.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirage_ros.core.codec import load_codec
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.predictor import Predictor
from mirage_ros.train.data import EVAL_SEED_LIMIT, synthetic_framesets
from mirage_ros.train.losses import masked_psnr, spearman, ssim_map

__all__ = ["decode_time_ms", "evaluate", "main"]


def decode_time_ms(codec: Any, width: int = 320, height: int = 240, repeats: int = 20) -> float:
    """Median wall time (ms) of one decode at width x height on the codec's device."""
    h, w = codec.latent_shape(height, width)
    dev = next(codec.parameters()).device
    z = torch.randn(1, codec.config.latent_channels, h, w, device=dev)
    cov = torch.rand(1, h, w, device=dev) > 0.3
    d = torch.full((1, h, w), 2.0, device=dev)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            t = time.perf_counter()
            codec.decode(z, cov, d, height, width)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i >= 3:
                times.append((time.perf_counter() - t) * 1e3)
    return float(statistics.median(times))


def _inpaint(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    import cv2

    img = (rgb * 255).round().astype(np.uint8)
    out = cv2.inpaint(img, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return out.astype(np.float32) / 255.0


def evaluate(
    weights: str | None,
    seeds: list[int],
    frames: int,
    width: int,
    height: int,
    holdout: int = 5,
    revisit_age_s: float = 8.0,
    camera_rate_hz: float = 5.0,
    time_decode: bool = True,
    voxel_size_m: float = 0.05,
    near_voxel_size_m: float = MemoryConfig.near_voxel_size_m,
) -> dict[str, Any]:
    """Stream held-out scenes through memory + codec and collect the metrics (see module doc)."""
    codec = load_codec(weights, device="cpu")
    s = codec.config.stride
    sets = synthetic_framesets(
        seeds,
        frames,
        width,
        height,
        s,
        texture_set="test",
        camera_rate_hz=camera_rate_hz,
        allow_eval_seeds=True,
    )
    per: dict[str, list[float]] = {
        k: []
        for k in (
            "recent_psnr",
            "recent_ssim",
            "revisit_psnr",
            "revisit_ssim",
            "hole_decoder_psnr",
            "hole_mean_psnr",
            "hole_inpaint_psnr",
            "coverage",
        )
    }
    err_all, unc_all = [], []
    rng = np.random.default_rng(0)
    for fs in sets:
        mem_cfg = MemoryConfig(
            latent_channels=codec.config.latent_channels, voxel_size_m=voxel_size_m, device="cpu",
            near_voxel_size_m=near_voxel_size_m,
        )  # fmt: skip
        pred = Predictor(codec, LatentSpatialMemory(mem_cfg))
        for i in range(len(fs)):
            if i % holdout != holdout - 1:
                # the set keeps depth on the latent grid; repeated blocks give it back exactly
                depth = np.zeros((height, width), np.float32)
                blocks = np.kron(fs.depth_lat[i], np.ones((s, s), np.float32))
                depth[: blocks.shape[0], : blocks.shape[1]] = blocks
                pred.observe(fs.rgb[i], depth, fs.K[i], fs.T_world_camera[i], int(fs.stamp_ns[i]))
                continue
            out = pred.predict(fs.K[i], fs.T_world_camera[i], height, width)
            target = torch.from_numpy(fs.rgb[i]).permute(2, 0, 1)[None].float() / 255.0
            rgb = out.rgb
            cov = out.coverage[:, None]
            per["coverage"].append(out.coverage_fraction[0])
            if cov.float().mean() > 0.05:
                r = pred.memory.render(
                    _lat_K(fs.K[i], s),
                    torch.from_numpy(fs.T_world_camera[i]),
                    *fs.depth_lat.shape[1:],
                )
                ages = r.age_s[r.coverage]
                kind = "revisit" if float(ages.median()) > revisit_age_s else "recent"
                per[f"{kind}_psnr"].append(masked_psnr(rgb, target, cov))
                per[f"{kind}_ssim"].append(float(ssim_map(rgb, target)[cov].mean()))
            hole = ~cov
            if 0.05 < hole.float().mean() < 0.95:
                per["hole_decoder_psnr"].append(masked_psnr(rgb, target, hole))
                mean_col = rgb[:, :, cov[0, 0]].mean(dim=2)[:, :, None, None].expand_as(rgb)
                per["hole_mean_psnr"].append(masked_psnr(mean_col, target, hole))
                filled = _inpaint(rgb[0].permute(1, 2, 0).numpy(), hole[0, 0].numpy())
                filled_t = torch.from_numpy(filled).permute(2, 0, 1)[None]
                per["hole_inpaint_psnr"].append(masked_psnr(filled_t, target, hole))
            err = (rgb - target).abs().mean(dim=1)[0].flatten().numpy()
            unc = (1.0 - out.confidence[0]).flatten().numpy()
            pick = rng.choice(err.size, size=min(2000, err.size), replace=False)
            err_all.append(err[pick])
            unc_all.append(unc[pick])
    summary: dict[str, Any] = {k: (float(np.nanmean(v)) if v else None) for k, v in per.items()}
    summary |= {f"n_{k}": len(v) for k, v in per.items() if k.endswith("psnr")}
    summary["spearman_uncertainty_error"] = spearman(
        np.concatenate(err_all), np.concatenate(unc_all)
    )
    if time_decode:
        summary["decode_ms_320x240"] = decode_time_ms(codec)
        summary["torch_threads"] = torch.get_num_threads()
    summary["codec_id"] = codec.codec_id
    summary["protocol"] = {
        "seeds": seeds,
        "texture_set": "test",
        "frames": frames,
        "resolution": [width, height],
        "holdout_every": holdout,
        "revisit_age_s": revisit_age_s,
        "camera_rate_hz": camera_rate_hz,
        "voxel_size_m": voxel_size_m,
        "near_voxel_size_m": mem_cfg.near_voxel_size_m if mem_cfg.has_near_level else 0.0,
    }
    return summary


def _lat_K(K: np.ndarray, s: int) -> torch.Tensor:
    from mirage_ros.core.geometry import scale_intrinsics

    return scale_intrinsics(torch.from_numpy(K), 1.0 / s, 1.0 / s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="codec weights (default: the shipped ones)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--resolution", default="320x240")
    p.add_argument("--holdout", type=int, default=5)
    p.add_argument("--revisit-age", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--voxel-size-m", type=float, default=0.05, help="the memory's voxel size")
    p.add_argument(
        "--near-voxel-size-m",
        type=float,
        default=MemoryConfig.near_voxel_size_m,
        help="the memory's near voxel size (0 = one level)",
    )
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if any(sd >= EVAL_SEED_LIMIT for sd in a.seeds):
        print(f"evaluation seeds must be < {EVAL_SEED_LIMIT}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    w, h = (int(v) for v in a.resolution.split("x"))
    res = evaluate(
        a.weights,
        a.seeds,
        a.frames,
        w,
        h,
        a.holdout,
        a.revisit_age,
        voxel_size_m=a.voxel_size_m,
        near_voxel_size_m=a.near_voxel_size_m,
    )
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
