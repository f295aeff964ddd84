"""Files of an evaluation: metrics.json, frames.csv, index.html and the PNGs it shows.

The page is self-contained: inline CSS, no scripts, no network; its images are PNG files next to
it (``plots/``, ``grids/``). Image grids (rows: memories; columns: real | predicted | confidence |
error) are written for every held-out frame into a scratch folder while the run goes on, and
only the worst, median and best frame of each class (by our memory's PSNR) are kept.
"""

from __future__ import annotations

import csv
import html
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mirage_ros.evaluation.protocol import CLASSES, MEMORIES, FrameRecord, Prediction

__all__ = [
    "GridWriter",
    "write_frames_csv",
    "write_html",
    "write_metrics_json",
    "write_plots",
]

_LABELS = {
    "mirage": "Mirage (ours)",
    "pixel_cloud": "pixel point cloud",
    "latent_cloud_append": "append latent cloud",
}
_COLORS = {"mirage": "tab:blue", "pixel_cloud": "tab:orange", "latent_cloud_append": "tab:green"}
_ERROR_MAX = 0.5  # mean abs error mapped to the top of the colormap
_SCRATCH = "_frames"


def _u8(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (np.clip(np.nan_to_num(x), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return out


def _grid(real: np.ndarray, preds: dict[str, Prediction]) -> np.ndarray:
    """(rows * H, 4 * W, 3) uint8: one row per memory, real | predicted | confidence | error."""
    from matplotlib import colormaps

    cmap = colormaps["magma"]
    rows = []
    for name in MEMORIES:
        p = preds.get(name)
        if p is None:
            continue
        real_f = real.astype(np.float32) / 255.0
        err = np.abs(p.rgb - real_f).mean(axis=-1) / _ERROR_MAX
        err_rgb = (cmap(np.clip(err, 0.0, 1.0))[..., :3] * 255.0).astype(np.uint8)
        conf = _u8(p.confidence)
        rows.append(np.concatenate([real, _u8(p.rgb), np.stack([conf] * 3, -1), err_rgb], 1))
    return np.concatenate(rows, 0)


class GridWriter:
    """``on_heldout`` callback of :class:`Evaluator`: writes each held-out frame's grid."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.scratch = self.out_dir / _SCRATCH
        self.scratch.mkdir(parents=True, exist_ok=True)

    def __call__(self, rec: FrameRecord, real: np.ndarray, preds: dict[str, Prediction]) -> None:
        from PIL import Image

        grid = _grid(real, preds)
        Image.fromarray(grid).save(self.scratch / f"{rec.index:07d}.png", compress_level=1)

    def discard(self) -> None:
        """Remove the scratch folder (a failed run)."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def finish(self, records: list[FrameRecord]) -> dict[str, dict[str, dict[str, Any]]]:
        """Keep worst/median/best per class; returns class -> which -> {file, index, psnr}."""
        chosen: dict[str, dict[str, dict[str, Any]]] = {}
        grids = self.out_dir / "grids"
        grids.mkdir(exist_ok=True)
        for cls in CLASSES:
            rows = [
                r for r in records if r.cls == cls and math.isfinite(r.metrics["mirage"]["psnr"])
            ]
            if not rows:
                continue
            rows.sort(key=lambda r: r.metrics["mirage"]["psnr"])
            picks = {"worst": rows[0], "median": rows[len(rows) // 2], "best": rows[-1]}
            chosen[cls] = {}
            for which, r in picks.items():
                src = self.scratch / f"{r.index:07d}.png"
                dst = grids / f"{cls}_{which}.png"
                shutil.copyfile(src, dst)
                chosen[cls][which] = {
                    "file": f"grids/{dst.name}",
                    "index": r.index,
                    "psnr": r.metrics["mirage"]["psnr"],
                }
        shutil.rmtree(self.scratch, ignore_errors=True)
        return chosen


def _clean(x: Any) -> Any:
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def write_metrics_json(path: Path, summary: dict[str, Any]) -> None:
    """metrics.json (strict JSON: NaN written as null)."""
    Path(path).write_text(json.dumps(_clean(summary), indent=2, allow_nan=False) + "\n")


def write_frames_csv(path: Path, records: list[FrameRecord], memories: tuple[str, ...]) -> None:
    """frames.csv: one row per held-out frame, metric columns named ``<memory>_<metric>``."""
    keys: list[str] = []
    if records:
        keys = list(records[0].metrics["mirage"])
    head = ["index", "stamp_ns", "class", "coverage_fraction", "median_age_s"]
    head += [f"{m}_{k}" for m in memories for k in [*keys, "memory_bytes"]]
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for r in records:
            row: list[Any] = [r.index, r.stamp_ns, r.cls, r.coverage_fraction, r.median_age_s]
            for m in memories:
                row += [r.metrics[m][k] for k in keys] + [r.memory_bytes[m]]
            w.writerow(["" if isinstance(v, float) and not math.isfinite(v) else v for v in row])


def write_plots(
    out_dir: Path, records: list[FrameRecord], timeline: list[dict[str, Any]],
    memories: tuple[str, ...],
) -> dict[str, str]:  # fmt: skip
    """PSNR over time and memory over time (all memories) -> {name: relative file}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = Path(out_dir) / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    t0 = timeline[0]["stamp_ns"] if timeline else 0
    markers = {"recent": "o", "revisit": "s", "novel": "^"}
    fig, ax = plt.subplots(figsize=(9, 3.8), dpi=100)
    for m in memories:
        for cls in CLASSES:
            rs = [r for r in records if r.cls == cls]
            ax.scatter(
                [(r.stamp_ns - t0) * 1e-9 for r in rs],
                [r.metrics[m]["psnr"] for r in rs],
                s=12, c=_COLORS[m], marker=markers[cls],
                label=f"{_LABELS[m]} ({cls})" if rs else None,
            )  # fmt: skip
    ax.set_xlabel("time (s)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("PSNR of held-out frames (o recent, s revisit, ^ novel)")
    ax.grid(alpha=0.3)
    if records:
        ax.legend(fontsize=7, ncol=3, loc="lower left")
    fig.tight_layout()
    fig.savefig(plots / "psnr_over_time.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 3.8), dpi=100)
    ts = [(row["stamp_ns"] - t0) * 1e-9 for row in timeline]
    ends = []
    for m in memories:
        ax.plot(ts, [row[m] / 2**20 for row in timeline], c=_COLORS[m], label=_LABELS[m])
        ends += [row[m] for row in timeline[-1:] if row[m] > 0]
    if ends and max(ends) > 20 * min(ends):  # the append cloud dwarfs the others
        ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("memory (MiB)")
    ax.set_title("Bytes held by each memory")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "memory_over_time.png")
    plt.close(fig)
    return {"psnr": "plots/psnr_over_time.png", "memory": "plots/memory_over_time.png"}


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "&ndash;"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return html.escape(str(x))


def _depth_label(lo: float, hi: float | None) -> str:
    return f"{lo:g}+ m" if hi is None else f"{lo:g}&ndash;{hi:g} m"


_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;
margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}
td.l,th.l{text-align:left}img{max-width:100%}figure{display:inline-block;margin:.4em}
figcaption{font-size:.85em;color:#444}.note{color:#555;font-size:.9em}"""


def write_html(
    path: Path, summary: dict[str, Any], plots: dict[str, str],
    grids: dict[str, dict[str, dict[str, Any]]], memories: tuple[str, ...],
) -> None:  # fmt: skip
    """index.html: the metric table, the two plots, the image grids."""
    cols = [
        ("psnr", "PSNR", 2), ("ssim", "SSIM", 3), ("psnr_covered", "PSNR cov.", 2),
        ("ssim_covered", "SSIM cov.", 3), ("coverage", "coverage", 3),
        ("depth_abs_rel", "depth abs-rel", 3), ("confidence_spearman", "conf./error rho", 3),
        ("count", "n", 0),
    ]  # fmt: skip
    rows = []
    for m in memories:
        entry = summary[m]
        for cls in CLASSES:
            e = entry[cls] or {}
            cells = "".join(f"<td>{_fmt(e.get(k), d)}</td>" for k, _, d in cols)
            rows.append(f"<tr><td class=l>{_LABELS[m]}</td><td class=l>{cls}</td>{cells}</tr>")
    head = "".join(f"<th>{t}</th>" for _, t, _ in cols)
    cost = "".join(
        f"<tr><td class=l>{_LABELS[m]}</td><td>{summary[m]['memory_bytes'] / 2**20:.2f}</td>"
        f"<td>{summary[m]['memory_bytes_peak'] / 2**20:.2f}</td>"
        f"<td>{_fmt(summary[m]['integrate_ms_p50'], 1)}</td>"
        f"<td>{_fmt(summary[m]['predict_ms_p50'], 1)}</td></tr>"
        for m in memories
    )
    depth_rows = []
    bins_head = ""
    for m in memories:
        for cls in CLASSES:
            bd = (summary[m][cls] or {}).get("by_depth")
            if not bd:
                continue
            bins_head = "".join(f"<th>{_depth_label(*b['depth_m'])}</th>" for b in bd)
            cells = "".join(
                f"<td>{_fmt(b['psnr_covered'])} / {_fmt(b['ssim_covered'], 3)}</td>" for b in bd
            )
            depth_rows.append(
                f"<tr><td class=l>{_LABELS[m]}</td><td class=l>{cls}</td>{cells}</tr>"
            )
    fr = summary["frames"]
    figs = []
    for cls in CLASSES:
        for which in ("worst", "median", "best"):
            g = grids.get(cls, {}).get(which)
            if g:
                cap = f"{cls}, {which}: frame {g['index']}, our PSNR {_fmt(g['psnr'])} dB"
                figs.append(
                    f'<figure><img src="{g["file"]}" alt="{cap}" width=640>'
                    f"<figcaption>{cap}</figcaption></figure>"
                )
    bags = ", ".join(html.escape(str(b)) for b in summary.get("bag", []))
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>mirage eval</title>
<style>{_CSS}</style></head><body>
<h1>mirage eval</h1>
<p class=note>bag: {bags}<br>device: {html.escape(str(summary.get("device")))}; codec:
{html.escape(str(summary.get("codec", {}).get("source", "")))}; frames integrated
{fr["integrated"]}, held out: {fr["recent"]} recent, {fr["revisit"]} revisit, {fr["novel"]}
novel; wall {_fmt(summary.get("wall_s"), 1)} s.</p>
<h2>Held-out frames</h2>
<table><tr><th class=l>memory</th><th class=l>class</th>{head}</tr>{"".join(rows)}</table>
<p class=note>PSNR/SSIM over all pixels and over memory-covered pixels (cov.); depth abs-rel over
pixels where both depths are known; conf./error rho: Spearman correlation of the confidence with
minus the error (higher is better calibrated).</p>
<h2>Covered pixels by true depth</h2>
<table><tr><th class=l>memory</th><th class=l>class</th>{bins_head}</tr>{"".join(depth_rows)}
</table>
<p class=note>PSNR (of the squared error pooled over the class's views) / mean SSIM of the
covered pixels whose true depth falls in each bin: where in depth a memory loses detail.</p>
<h2>Cost</h2>
<table><tr><th class=l>memory</th><th>MiB (end)</th><th>MiB (peak)</th><th>integrate ms p50</th>
<th>predict ms p50</th></tr>{cost}</table>
<h2>Over time</h2>
<img src="{plots["psnr"]}" alt="PSNR over time"><br>
<img src="{plots["memory"]}" alt="memory over time">
<h2>Worst, median and best frames per class</h2>
<p class=note>Rows: {", ".join(_LABELS[m] for m in memories)}. Columns: real | predicted |
confidence (white = confident) | error (mean absolute error, black 0 to yellow
{_ERROR_MAX}).</p>
{"".join(figs) or "<p>No held-out frames.</p>"}
</body></html>
"""
    Path(path).write_text(page)
