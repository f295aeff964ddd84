"""Small, fast synthetic worlds shared by the sim tests (helpers, imported by name)."""

from __future__ import annotations

import numpy as np
from mirage_ros.sim import Box, Scene, SceneConfig
from mirage_ros.sim.textures import MaterialLibrary, Texture

SMALL = {"width": 64, "height": 48, "texture_px": 32}


def small_config(**kw: object) -> SceneConfig:
    args: dict[str, object] = {**SMALL, "frames": 120}
    args.update(kw)
    return SceneConfig(**args)  # type: ignore[arg-type]


def wall_scene(x_m: float = 4.0) -> Scene:
    """One big wall whose -x face is the plane x = x_m, and nothing else."""
    rng = np.random.default_rng(0)
    tex = Texture("test", rng.uniform(0, 1, (16, 16, 3)).astype(np.float32), 1.0)
    box = Box((x_m, -50.0, -50.0), (x_m + 1.0, 50.0, 50.0), (0,) * 6, "wall", "wall")
    return Scene([box], [], [], MaterialLibrary([tex]), 2.5)


def look_along_x(yaw_rad: float = 0.0, pitch_rad: float = 0.0) -> np.ndarray:
    """T_world_camera of an optical frame at the origin looking along +x (yawed, pitched)."""
    from transforms3d.euler import euler2mat

    R_body = euler2mat(0.0, pitch_rad, yaw_rad, "sxyz")  # body x forward, z up
    R_body_optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    T = np.eye(4)
    T[:3, :3] = R_body @ R_body_optical
    return T
