"""SyntheticSequence: the frames of a config, rendered on demand, with their exact poses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mirage_ros.core.errors import ConfigError
from mirage_ros.sim.config import SceneConfig
from mirage_ros.sim.raycast import render_view
from mirage_ros.sim.scene import Scene
from mirage_ros.sim.trajectory import Trajectory
from mirage_ros.sim.world import make_scene

__all__ = ["FRAME_IDS", "Frame", "SyntheticSequence"]

#: frame ids written to bags (REP-105 chain + the camera optical frame)
FRAME_IDS = {
    "map": "map",
    "odom": "odom",
    "base": "base_link",
    "camera": "camera_color_optical_frame",
}


@dataclass(frozen=True, eq=False)
class Frame:
    """One rendered camera frame with its exact poses (world = ``map``)."""

    index: int
    stamp_ns: int
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_m: np.ndarray  # (H, W) float32 z-depth in metres, 0 = no surface
    K: np.ndarray  # (3, 3) float64
    T_world_camera: np.ndarray  # (4, 4) float64, = T_map_odom @ T_odom_base @ T_base_camera
    T_map_odom: np.ndarray  # (4, 4) float64
    T_odom_base: np.ndarray  # (4, 4) float64
    T_base_camera: np.ndarray  # (4, 4) float64 (static)


class SyntheticSequence:
    """A deterministic sequence of frames; iterable, indexable, ``len()`` = config.frames.

    The scene is built once; frames are rendered when asked for (nothing is cached), so a long
    sequence costs no memory. ``poses_at(stamp_ns)`` gives the TF chain at any stamp (for /tf at
    50-100 Hz).
    """

    def __init__(self, config: SceneConfig | None = None, scene: Scene | None = None) -> None:
        self.config = config if config is not None else SceneConfig()
        self.scene = scene if scene is not None else make_scene(self.config)
        traj = self.scene.trajectory
        if not isinstance(traj, Trajectory):
            raise ConfigError("the scene has no trajectory (build it with make_scene)")
        self.trajectory = traj
        self.K = self.config.K
        self.T_base_camera = traj.T_base_camera.copy()

    def __len__(self) -> int:
        return self.config.frames

    @property
    def start_ns(self) -> int:
        return self.config.stamp_ns(0)

    @property
    def end_ns(self) -> int:
        return self.config.stamp_ns(self.config.frames - 1)

    @property
    def stamps_ns(self) -> list[int]:
        return [self.config.stamp_ns(i) for i in range(len(self))]

    @property
    def event_stamp_ns(self) -> int | None:
        """Stamp at which an object moved or vanished (None when there is no event)."""
        return self.scene.event_stamp_ns

    def _t_s(self, stamp_ns: int) -> float:
        return (int(stamp_ns) - self.start_ns) * 1e-9

    def poses_at(self, stamp_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(T_map_odom, T_odom_base), each (4, 4) float64, at any stamp (TF rate)."""
        t = np.array([self._t_s(stamp_ns)])
        T_map_odom = self.trajectory.T_map_odom(t)[0]
        T_map_base = self.trajectory.T_map_base(t)[0]
        return T_map_odom, np.linalg.inv(T_map_odom) @ T_map_base

    def T_world_camera_at(self, stamp_ns: int) -> np.ndarray:
        """(4, 4) float64 camera optical frame in map at stamp_ns."""
        T_map_odom, T_odom_base = self.poses_at(stamp_ns)
        return np.asarray(T_map_odom @ T_odom_base @ self.T_base_camera)

    def poses(self) -> np.ndarray:
        """(N, 4, 4) T_world_camera of every frame, without rendering."""
        return np.stack([self.T_world_camera_at(s) for s in self.stamps_ns])

    def __getitem__(self, index: int) -> Frame:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range for a sequence of {n}")
        index %= n
        stamp = self.config.stamp_ns(index)
        T_map_odom, T_odom_base = self.poses_at(stamp)
        T_world_camera = T_map_odom @ T_odom_base @ self.T_base_camera
        rgb, depth = render_view(
            self.scene, self.K, T_world_camera, self.config.width, self.config.height, stamp
        )
        return Frame(
            index,
            stamp,
            rgb,
            depth,
            self.K.copy(),
            T_world_camera,
            T_map_odom,
            T_odom_base,
            self.T_base_camera.copy(),
        )

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]
