"""Textures: the train/test split is disjoint, patterns tile seamlessly, mip lookup is right."""

from __future__ import annotations

import numpy as np
from mirage_ros.sim import PATTERN_SPLIT, PHOTO_SPLIT, make_scene
from mirage_ros.sim.textures import MaterialLibrary, Texture, pattern_texture
from sim_worlds import small_config


def test_train_and_test_groups_share_no_photo_and_no_pattern_family() -> None:
    assert not set(PHOTO_SPLIT["train"]) & set(PHOTO_SPLIT["test"])
    assert not set(PATTERN_SPLIT["train"]) & set(PATTERN_SPLIT["test"])


def test_a_scene_only_uses_textures_of_its_set() -> None:
    for split in ("train", "test"):
        allowed = {f"photo:{n}" for n in PHOTO_SPLIT[split]}
        allowed |= {f"pattern:{n}" for n in PATTERN_SPLIT[split]}
        for seed in range(3):
            scene = make_scene(small_config(seed=seed, texture_set=split))
            names = {t.name for t in scene.library.textures}
            assert names <= allowed, names - allowed


def test_patterns_tile_seamlessly() -> None:
    """The jump across the tile border is no larger than the jumps inside the tile."""
    rng = np.random.default_rng(0)
    for family in PATTERN_SPLIT["train"] + PATTERN_SPLIT["test"]:
        img = pattern_texture(family, rng, 64).image
        for axis in (0, 1):
            inner = np.abs(np.diff(img, axis=axis)).mean(axis=(1 - axis, 2))  # per border
            wrap = np.abs(img.take(0, axis=axis) - img.take(-1, axis=axis)).mean()
            assert wrap <= inner.max() + 1e-3, (family, axis)


def test_sample_at_texel_centres_returns_the_texels() -> None:
    img = np.random.default_rng(1).uniform(0, 1, (8, 8, 3)).astype(np.float32)
    lib = MaterialLibrary([Texture("t", img, 2.0)])
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    u = ((cols.ravel() + 0.5) / 8 * 2.0).astype(np.float32)
    v = ((rows.ravel() + 0.5) / 8 * 2.0).astype(np.float32)
    out = lib.sample(np.zeros(64, np.int64), u, v, np.full(64, 1e-4, np.float32))
    np.testing.assert_allclose(out, img.reshape(-1, 3), atol=0.5 / 255 + 1e-6)  # 8-bit texels
    # a pixel far bigger than the tile reads the coarsest level (4 x 4, the 2 x 2 block means)
    u4 = np.array([(1 + 0.5) / 4 * 2.0], np.float32)
    v4 = np.array([(2 + 0.5) / 4 * 2.0], np.float32)
    far = lib.sample(np.zeros(1, np.int64), u4, v4, np.full(1, 100.0, np.float32))
    np.testing.assert_allclose(far[0], img[4:6, 2:4].mean(axis=(0, 1)), atol=0.5 / 255 + 1e-6)
