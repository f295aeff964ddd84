"""Textures for the synthetic worlds: photographs and seamless procedural patterns.

A texture is a square float32 RGB image in [0, 1] that is repeated over a surface every
``tile_m`` metres. :class:`MaterialLibrary` stacks the textures of one scene with their
mip-maps so the renderer can look them up for every pixel in one vectorised gather.

The train/test split (``texture_set``) is disjoint on both axes of variety:

* photographs from ``skimage.data``: ``PHOTO_SPLIT["train"]`` and ``PHOTO_SPLIT["test"]`` share
  no image;
* procedural pattern *families*: ``PATTERN_SPLIT["train"]`` and ``PATTERN_SPLIT["test"]`` share
  no family; each family's parameters (frequencies, colours, phases) are drawn from the seed.

``"all"`` draws from the union. A model trained on ``texture_set="train"`` therefore never sees
a test photograph or a test pattern family, whatever the seed.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mirage_ros.core.errors import ConfigError

__all__ = [
    "PATTERN_SPLIT",
    "PHOTO_SPLIT",
    "TEXTURE_SETS",
    "MaterialLibrary",
    "Texture",
    "make_texture",
    "pattern_texture",
    "photo_texture",
]

TEXTURE_SETS = ("train", "test", "all")

#: skimage.data photographs (all bundled with scikit-image, nothing is downloaded)
PHOTO_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "camera", "moon"),
    "test": (
        "hubble_deep_field",
        "retina",
        "immunohistochemistry",
        "gravel",
        "cat",
        "colorwheel",
        "clock",
        "coins",
    ),
}

#: procedural pattern families (parameters drawn from the scene seed)
PATTERN_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("checker", "stripes", "bricks", "noise", "wood"),
    "test": ("dots", "tiles", "plaid", "marble"),
}


@dataclass(frozen=True)
class Texture:
    """One repeating texture."""

    name: str  # e.g. "photo:coffee" or "pattern:bricks"
    image: np.ndarray  # (S, S, 3) float32 in [0, 1], row 0 = top of the tile
    tile_m: float  # side of one repetition of the image on a surface, metres


def _names(texture_set: str, split: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    if texture_set not in TEXTURE_SETS:
        raise ConfigError(f"texture_set must be one of {TEXTURE_SETS}, got {texture_set!r}")
    if texture_set == "all":
        return split["train"] + split["test"]
    return split[texture_set]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """Area-average resize of a float image (H, W, 3) to (size, size, 3) (deterministic)."""
    import cv2

    return np.asarray(
        cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), dtype=np.float32
    )


@functools.lru_cache(maxsize=32)
def _photo(name: str) -> np.ndarray:
    """The named skimage.data photograph as float32 RGB (H, W, 3) in [0, 1] (cached)."""
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3].astype(np.float32) / 255.0
    img.setflags(write=False)
    return img


def _random_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.2, 0.8)) -> np.ndarray:
    h = float(rng.uniform(0.0, 1.0))
    s = float(rng.uniform(*sat))
    v = float(rng.uniform(0.35, 0.95))
    return np.asarray(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def photo_texture(name: str, rng: np.random.Generator, size: int) -> Texture:
    """A random square crop of a photograph; greyscale photos get a random tint."""
    img = _photo(name)
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.5, 1.0))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = _resize(np.ascontiguousarray(img[y0 : y0 + side, x0 : x0 + side]), size)
    if np.allclose(img[..., 0], img[..., 1]):  # greyscale source: tint it
        crop = crop * (0.5 + 0.5 * _random_colour(rng, (0.1, 0.6)))
    tile_m = float(rng.uniform(0.8, 2.2))
    return Texture(f"photo:{name}", np.clip(crop, 0.0, 1.0).astype(np.float32), tile_m)


def _periodic_noise(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, max_freq: int, n: int = 24
) -> np.ndarray:
    """Seamless band-limited noise in about [-1, 1]: a sum of integer-frequency cosines.

    x, y: (S, S) meshgrid coordinates in [0, 1); each cosine is separable, so it costs an outer
    product: cos(a + b) = cos a cos b - sin a sin b.
    """
    xs, ys = x[0].astype(np.float64), y[:, 0].astype(np.float64)
    out = np.zeros(x.shape, dtype=np.float64)
    for _ in range(n):
        fx, fy = rng.integers(-max_freq, max_freq + 1, size=2)
        f = max(1.0, float(np.hypot(fx, fy)))
        phase = rng.uniform(0.0, 2.0 * np.pi)
        a = 2.0 * np.pi * fx * xs + phase
        b = 2.0 * np.pi * fy * ys
        out += (np.outer(np.cos(b), np.cos(a)) - np.outer(np.sin(b), np.sin(a))) / f
    return (out / max(1e-6, float(np.abs(out).max()))).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)[..., None]
    return np.asarray((1.0 - t) * a + t * b, dtype=np.float32)


def _checker(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = int(rng.integers(2, 9))
    a, b = _random_colour(rng), _random_colour(rng)
    t = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(np.float32)
    return _mix(a, b, t) * (1.0 + 0.08 * _periodic_noise(rng, x, y, 24)[..., None])


def _stripes(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    fx, fy = int(rng.integers(0, 9)), int(rng.integers(1, 9))
    if rng.random() < 0.5:
        fx, fy = fy, fx
    a, b = _random_colour(rng), _random_colour(rng)
    s = 0.5 + 0.5 * np.sin(2.0 * np.pi * (fx * x + fy * y))
    sharp = float(rng.uniform(1.0, 6.0))
    return _mix(a, b, 0.5 + (s - 0.5) * sharp)


def _bricks(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rows = int(rng.integers(3, 9))
    cols = int(rng.integers(2, 6))
    mortar = _random_colour(rng, (0.0, 0.2))
    brick = _random_colour(rng, (0.3, 0.8))
    ry = y * rows
    row = np.floor(ry)
    rx = x * cols + 0.5 * (row % 2)
    fy, fx = ry - row, rx - np.floor(rx)
    gap = 0.06
    in_mortar = (fy < gap) | (fx < gap * rows / cols)
    cell = (np.floor(rx) % cols) * 31 + row * 17
    shade = 0.8 + 0.4 * ((np.sin(cell * 12.9898) * 43758.5453) % 1.0)
    noise = 1.0 + 0.1 * _periodic_noise(rng, x, y, 32)
    out = brick * (shade * noise)[..., None]
    return np.where(in_mortar[..., None], mortar, out)


def _noise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a, b = _random_colour(rng), _random_colour(rng)
    n = _periodic_noise(rng, x, y, int(rng.integers(4, 24)), n=32)
    return _mix(a, b, 0.5 + 0.5 * n)


def _wood(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = _random_colour(rng, (0.4, 0.7))
    b = a * float(rng.uniform(0.45, 0.75))
    rings = int(rng.integers(4, 14))
    warp = _periodic_noise(rng, x, y, 3) * float(rng.uniform(0.2, 0.6))
    s = 0.5 + 0.5 * np.sin(2.0 * np.pi * (rings * y + warp))
    grain = 0.06 * _periodic_noise(rng, x, y, 48)
    return _mix(a, b, s**3 + grain)


def _dots(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = int(rng.integers(2, 8))
    bg, fg = _random_colour(rng), _random_colour(rng)
    r = float(rng.uniform(0.15, 0.4))
    dx = (x * n) % 1.0 - 0.5
    dy = (y * n) % 1.0 - 0.5
    inside = np.hypot(dx, dy) < r
    return np.where(inside[..., None], fg, bg) * 1.0


def _tiles(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = int(rng.integers(2, 7))
    grout = _random_colour(rng, (0.0, 0.15))
    base = _random_colour(rng)
    cx, cy = np.floor(x * n), np.floor(y * n)
    cell = cx * 7.0 + cy * 13.0
    shade = 0.75 + 0.5 * ((np.sin(cell * 78.233) * 43758.5453) % 1.0)
    fx, fy = (x * n) % 1.0, (y * n) % 1.0
    edge = (fx < 0.05) | (fy < 0.05)
    return np.where(edge[..., None], grout, base * shade[..., None])


def _plaid(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a, b, c = _random_colour(rng), _random_colour(rng), _random_colour(rng)
    fx, fy = int(rng.integers(2, 8)), int(rng.integers(2, 8))
    sx = (np.sin(2.0 * np.pi * fx * x) > 0.3).astype(np.float32)
    sy = (np.sin(2.0 * np.pi * fy * y) > 0.3).astype(np.float32)
    return _mix(_mix(a, b, sx), c, 0.5 * sy)


def _marble(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = _random_colour(rng, (0.0, 0.3))
    b = _random_colour(rng, (0.1, 0.6))
    k = int(rng.integers(1, 5))
    turb = _periodic_noise(rng, x, y, 8, n=32) * float(rng.uniform(1.0, 3.0))
    s = np.abs(np.sin(np.pi * (k * (x + y) + turb)))
    return _mix(b, a, s**0.4)


_PATTERNS: dict[str, Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]] = {
    "checker": _checker,
    "stripes": _stripes,
    "bricks": _bricks,
    "noise": _noise,
    "wood": _wood,
    "dots": _dots,
    "tiles": _tiles,
    "plaid": _plaid,
    "marble": _marble,
}


def pattern_texture(family: str, rng: np.random.Generator, size: int) -> Texture:
    """A seamless procedural texture of the given family with parameters drawn from rng."""
    if family not in _PATTERNS:
        raise ConfigError(f"unknown pattern family {family!r}; known: {sorted(_PATTERNS)}")
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    img = _PATTERNS[family](rng, x, y).astype(np.float32)
    tile_m = float(rng.uniform(0.5, 2.0))
    return Texture(f"pattern:{family}", np.clip(img, 0.0, 1.0), tile_m)


def make_texture(texture_set: str, rng: np.random.Generator, size: int) -> Texture:
    """Draw one texture from the set: a photograph with probability 0.4, else a pattern."""
    photos = _names(texture_set, PHOTO_SPLIT)
    patterns = _names(texture_set, PATTERN_SPLIT)
    if rng.random() < 0.4:
        return photo_texture(photos[int(rng.integers(len(photos)))], rng, size)
    return pattern_texture(patterns[int(rng.integers(len(patterns)))], rng, size)


class MaterialLibrary:
    """The textures of one scene, stacked with mip-maps for vectorised lookup.

    All textures share the size S (a power of two). Level l has side S >> l; every level of
    every texture lives in one flat (N, 3) float32 array so a lookup is a single gather.
    """

    def __init__(self, textures: list[Texture], min_level_px: int = 4) -> None:
        if not textures:
            raise ConfigError("a material library needs at least one texture")
        size = textures[0].image.shape[0]
        if size & (size - 1) or size < min_level_px:
            raise ConfigError(f"texture size must be a power of two >= {min_level_px}, got {size}")
        for t in textures:
            if t.image.shape != (size, size, 3):
                raise ConfigError(f"texture {t.name} has shape {t.image.shape}, want {size}")
        self.textures = list(textures)
        self.size_px = size
        self.tile_m = np.asarray([t.tile_m for t in textures], dtype=np.float32)
        levels: list[np.ndarray] = [np.stack([t.image for t in textures])]
        while levels[-1].shape[1] > min_level_px:
            prev = levels[-1]
            levels.append(
                0.25
                * (
                    prev[:, ::2, ::2]
                    + prev[:, 1::2, ::2]
                    + prev[:, ::2, 1::2]
                    + prev[:, 1::2, 1::2]
                )
            )
        self.num_levels = len(levels)
        self.level_side = np.asarray([lv.shape[1] for lv in levels], dtype=np.int64)
        sizes = [lv.size // 3 for lv in levels]
        self.level_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        # stored as uint8 (a quarter of the memory; photos are 8-bit anyway)
        flat = np.concatenate([lv.reshape(-1, 3) for lv in levels])
        self.texels = np.round(np.clip(flat, 0.0, 1.0) * 255.0).astype(np.uint8)

    def __len__(self) -> int:
        return len(self.textures)

    def sample(
        self, material: np.ndarray, u_m: np.ndarray, v_m: np.ndarray, footprint_m: np.ndarray
    ) -> np.ndarray:
        """Bilinear lookup in the mip level that matches the pixel footprint.

        material: (N,) int; u_m, v_m: (N,) float32 surface coordinates in metres (v down);
        footprint_m: (N,) float32 size of the pixel on the surface. Returns (N, 3) float32.
        """
        tile = self.tile_m[material]
        texel_m = tile / self.size_px
        ratio = np.maximum(footprint_m / texel_m, 1.0)
        level = np.minimum(np.floor(np.log2(ratio)).astype(np.int64), self.num_levels - 1)
        side = self.level_side[level]
        side_f = side.astype(np.float32)
        fu = (u_m / tile) * side_f - 0.5
        fv = (v_m / tile) * side_f - 0.5
        u0f, v0f = np.floor(fu), np.floor(fv)
        wu = (fu - u0f).astype(np.float32)[:, None]
        wv = (fv - v0f).astype(np.float32)[:, None]
        u0 = u0f.astype(np.int64) % side
        v0 = v0f.astype(np.int64) % side
        u1 = (u0 + 1) % side
        v1 = (v0 + 1) % side
        base = self.level_offset[level] + material.astype(np.int64) * side * side
        tex = self.texels
        top = tex[base + v0 * side + u0] * (1.0 - wu) + tex[base + v0 * side + u1] * wu
        bot = tex[base + v1 * side + u0] * (1.0 - wu) + tex[base + v1 * side + u1] * wu
        return np.asarray((top * (1.0 - wv) + bot * wv) * np.float32(1.0 / 255.0), np.float32)
