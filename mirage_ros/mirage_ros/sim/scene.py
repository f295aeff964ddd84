"""The world: axis-aligned boxes with a material per face, walkable spaces, doors and lights.

Everything is in the ``map`` frame, z up, metres. A box may exist only during a time interval
(``t_start_ns <= stamp < t_end_ns``); that is how an object is removed or moved mid-sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mirage_ros.core.errors import ConfigError
from mirage_ros.sim.textures import MaterialLibrary

__all__ = ["ALWAYS_END_NS", "ALWAYS_START_NS", "Box", "Door", "Scene", "Space"]

ALWAYS_START_NS = -(2**62)
ALWAYS_END_NS = 2**62

#: face index = 2 * axis + (1 if the outward normal points to +axis else 0)
FACE_NAMES = ("-x", "+x", "-y", "+y", "-z", "+z")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box; ``materials[f]`` is the material of face f (see FACE_NAMES)."""

    lo: tuple[float, ...]  # (3,) min corner, metres
    hi: tuple[float, ...]  # (3,) max corner, metres
    materials: tuple[int, ...]  # (6,) material index per face
    kind: str = "furniture"  # "wall" | "floor" | "ceiling" | "furniture"
    name: str = ""
    t_start_ns: int = ALWAYS_START_NS  # exists from this stamp on
    t_end_ns: int = ALWAYS_END_NS  # and until (excluded) this stamp


@dataclass(frozen=True)
class Space:
    """A walkable rectangle (a room or the corridor): its interior, inside the walls."""

    name: str
    lo: tuple[float, float]  # (x, y) min of the interior, metres
    hi: tuple[float, float]  # (x, y) max
    lamp_tint: tuple[float, ...] = (1.0, 1.0, 1.0)  # colour of the ceiling light
    lamp_power: float = 1.0  # relative brightness of the ceiling light

    def contains(self, xy: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
        """xy: (N, 2) -> (N,) bool, inside the interior shrunk by margin_m."""
        lo = np.asarray(self.lo) + margin_m
        hi = np.asarray(self.hi) - margin_m
        return np.asarray(np.all((xy >= lo) & (xy <= hi), axis=-1))


@dataclass(frozen=True)
class Door:
    """A doorway between spaces a and b (indices into Scene.spaces)."""

    a: int
    b: int
    center_xy: tuple[float, float]  # centre of the opening on the wall's centre line
    axis: int  # 0: the wall is normal to x, 1: normal to y
    width_m: float


@dataclass
class Scene:
    """A built world (mutable only while make_scene assembles it)."""

    boxes: list[Box]
    spaces: list[Space]
    doors: list[Door]
    library: MaterialLibrary
    height_m: float  # floor to ceiling
    light_dir: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.5, 0.81]))
    ambient: float = 0.35
    seed: int = 0
    event_box: int | None = None  # index of the box that disappears at the event
    moved_box: int | None = None  # index of its moved copy (event "move")
    event_stamp_ns: int | None = None
    trajectory: object | None = None  # the sim.trajectory.Trajectory built with the scene

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the packed arrays from ``boxes`` (call after editing the list)."""
        if not self.boxes:
            raise ConfigError("a scene needs at least one box")
        self.lo = np.asarray([b.lo for b in self.boxes], dtype=np.float64)  # (B, 3)
        self.hi = np.asarray([b.hi for b in self.boxes], dtype=np.float64)  # (B, 3)
        if np.any(self.hi <= self.lo):
            raise ConfigError("every box needs hi > lo on all axes")
        self.materials = np.asarray([b.materials for b in self.boxes], dtype=np.int64)  # (B, 6)
        if self.materials.min() < 0 or self.materials.max() >= len(self.library):
            raise ConfigError("a box names a material that is not in the library")
        self.t_start_ns = np.asarray([b.t_start_ns for b in self.boxes], dtype=np.int64)
        self.t_end_ns = np.asarray([b.t_end_ns for b in self.boxes], dtype=np.int64)
        self.space_lo = np.asarray([s.lo for s in self.spaces], dtype=np.float64).reshape(-1, 2)
        self.space_hi = np.asarray([s.hi for s in self.spaces], dtype=np.float64).reshape(-1, 2)
        self.lamp_tint = np.asarray([s.lamp_tint for s in self.spaces], np.float32).reshape(-1, 3)
        self.lamp_power = np.asarray([s.lamp_power for s in self.spaces], np.float32)
        # each space's ceiling light: a rectangle 1 m inside its walls (nearest point is used)
        self.lamp_mid = ((self.space_lo + self.space_hi) / 2).astype(np.float32)
        self.lamp_half = np.maximum((self.space_hi - self.space_lo) / 2 - 1.0, 0.0).astype(
            np.float32
        )
        # the space each face looks into (-1: none, e.g. a door jamb or an outer wall)
        centre = (self.lo + self.hi) / 2
        probes = np.repeat(centre[:, None], 6, axis=1)  # (B, 6, 3)
        for f in range(6):
            axis, positive = divmod(f, 2)
            probes[:, f, axis] = self.hi[:, axis] + 0.02 if positive else self.lo[:, axis] - 0.02
        self.face_space = self.space_index(probes[..., :2].reshape(-1, 2)).reshape(-1, 6)

    def __len__(self) -> int:
        return len(self.boxes)

    def active(self, stamp_ns: int | None) -> np.ndarray:
        """(B,) bool: boxes that exist at stamp_ns (None: the initial state, before any event)."""
        s = ALWAYS_START_NS if stamp_ns is None else int(stamp_ns)
        return (self.t_start_ns <= s) & (s < self.t_end_ns)

    def space_index(self, xy: np.ndarray, tol_m: float = 0.02) -> np.ndarray:
        """xy: (N, 2) -> (N,) int64 index of the space containing each point, -1 if none."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        out = np.full(xy.shape[0], -1, dtype=np.int64)
        for i in range(len(self.spaces)):
            inside = np.all(
                (xy >= self.space_lo[i] - tol_m) & (xy <= self.space_hi[i] + tol_m), axis=1
            )
            out[inside & (out < 0)] = i
        return out

    def clearance_m(self, xy: np.ndarray, stamp_ns: int | None = None) -> np.ndarray:
        """xy: (N, 2) -> (N,) horizontal distance to the nearest wall or object (0 inside one).

        Floors and ceilings are ignored; every box that reaches below 2 m counts.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        keep = self.active(stamp_ns) & (self.lo[:, 2] < 2.0) & (self.hi[:, 2] > 0.05)
        keep &= np.asarray([b.kind in ("wall", "furniture") for b in self.boxes])
        lo, hi = self.lo[keep, :2], self.hi[keep, :2]
        d = np.maximum(np.maximum(lo[None] - xy[:, None], xy[:, None] - hi[None]), 0.0)
        return np.asarray(np.sqrt((d**2).sum(-1)).min(axis=1))
