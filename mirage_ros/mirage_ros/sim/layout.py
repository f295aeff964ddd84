"""Procedural indoor layouts: rooms along a corridor with doorways, and furniture.

Conventions that make the trajectory safe by construction:

* walls are centred on cell boundaries, ``WALL_M`` thick; a space's interior is its cell shrunk
  by half a wall;
* furniture against a wall is at most ``WALL_DEPTH_MAX_M`` deep; a central table leaves
  ``TABLE_CLEAR_M`` around it to the walking loop, which runs ``LOOP_MARGIN_M`` from the walls;
* nothing is placed within ``DOOR_CLEAR_M`` of a doorway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mirage_ros.sim.config import SceneConfig
from mirage_ros.sim.scene import Box, Door, Space
from mirage_ros.sim.textures import Texture, make_texture

__all__ = ["LOOP_MARGIN_M", "Layout", "build_layout"]

WALL_M = 0.12
DOOR_H_M = 2.1
LOOP_MARGIN_M = 0.95
WALL_DEPTH_MAX_M = 0.55
TABLE_CLEAR_M = 0.6
DOOR_CLEAR_M = 1.3


@dataclass
class Layout:
    """What build_layout produces (the Scene is assembled from it)."""

    boxes: list[Box] = field(default_factory=list)
    spaces: list[Space] = field(default_factory=list)
    doors: list[Door] = field(default_factory=list)
    textures: list[Texture] = field(default_factory=list)
    height_m: float = 2.6
    rooms: list[int] = field(default_factory=list)  # indices of spaces that are rooms
    corridor: int | None = None  # index of the corridor space


class _Builder:
    def __init__(self, config: SceneConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.out = Layout()
        self.wall_mat: list[int] = []  # per space
        self.floor_mat: list[int] = []
        self.ceil_mat: list[int] = []
        self.frame_mat = self.material()

    def material(self) -> int:
        self.out.textures.append(
            make_texture(self.config.texture_set, self.rng, self.config.texture_px)
        )
        return len(self.out.textures) - 1

    def add_space(self, name: str, lo: tuple[float, float], hi: tuple[float, float]) -> int:
        h = WALL_M / 2
        rng = self.rng
        tint = tuple(float(v) for v in 1.0 - rng.uniform(0.0, 0.25, size=3))
        space = Space(
            name,
            (lo[0] + h, lo[1] + h),
            (hi[0] - h, hi[1] - h),
            tint,
            float(rng.uniform(0.7, 1.2)),
        )
        self.out.spaces.append(space)
        self.wall_mat.append(self.material())
        self.floor_mat.append(self.material())
        self.ceil_mat.append(self.material())
        idx = len(self.out.spaces) - 1
        H = self.out.height_m
        zero = (0, 0, 0, 0, 0, 0)
        floor = list(zero)
        floor[5] = self.floor_mat[idx]
        ceil = list(zero)
        ceil[4] = self.ceil_mat[idx]
        self.out.boxes.append(
            Box(
                (lo[0], lo[1], -0.1),
                (hi[0], hi[1], 0.0),
                tuple(floor),
                "floor",
                f"{name}/floor",
            )
        )
        self.out.boxes.append(
            Box(
                (lo[0], lo[1], H),
                (hi[0], hi[1], H + 0.1),
                tuple(ceil),
                "ceiling",
                f"{name}/ceiling",
            )
        )
        return idx

    def _space_at(self, x: float, y: float) -> int:
        for i, s in enumerate(self.out.spaces):
            if s.lo[0] - 1e-6 <= x <= s.hi[0] + 1e-6 and s.lo[1] - 1e-6 <= y <= s.hi[1] + 1e-6:
                return i
        return -1

    def wall_box(
        self, lo: tuple[float, float, float], hi: tuple[float, float, float], name: str
    ) -> None:
        """Add a wall box; each vertical face takes the wall material of the space it faces."""
        mats = [self.frame_mat] * 6
        c = [(lo[i] + hi[i]) / 2 for i in range(3)]
        for axis in (0, 1):
            for side, coord in ((0, lo[axis] - 0.02), (1, hi[axis] + 0.02)):
                p = list(c[:2])
                p[axis] = coord
                s = self._space_at(p[0], p[1])
                if s >= 0:
                    mats[2 * axis + side] = self.wall_mat[s]
        self.out.boxes.append(Box(lo, hi, tuple(mats), "wall", name))

    def wall(
        self,
        axis: int,
        line: float,
        a: float,
        b: float,
        name: str,
        door: tuple[float, float] | None = None,
    ) -> None:
        """A wall centred on ``coord[axis] = line`` spanning [a, b] along the other axis,
        optionally with a doorway (centre, width)."""
        h, H = WALL_M / 2, self.out.height_m

        def seg(s0: float, s1: float, z0: float, z1: float, part: str) -> None:
            if s1 - s0 <= 1e-6:
                return
            if axis == 0:
                self.wall_box((line - h, s0, z0), (line + h, s1, z1), f"{name}/{part}")
            else:
                self.wall_box((s0, line - h, z0), (s1, line + h, z1), f"{name}/{part}")

        if door is None:
            seg(a - h, b + h, 0.0, H, "wall")
            return
        d0, d1 = door[0] - door[1] / 2, door[0] + door[1] / 2
        seg(a - h, d0, 0.0, H, "left")
        seg(d1, b + h, 0.0, H, "right")
        seg(d0, d1, DOOR_H_M, H, "lintel")

    def door_between(
        self, a: int, b: int, axis: int, line: float, lo: float, hi: float
    ) -> tuple[float, float]:
        """Pick a doorway on the shared wall [lo, hi]; record it; return (centre, width)."""
        width = float(self.rng.uniform(0.9, 1.1))
        margin = width / 2 + 0.7
        centre = (
            float(self.rng.uniform(lo + margin, hi - margin))
            if hi - lo > 2 * margin
            else (lo + hi) / 2
        )
        xy = (line, centre) if axis == 0 else (centre, line)
        self.out.doors.append(Door(a, b, xy, axis, width))
        return centre, width


def _furnish(bld: _Builder, space_idx: int) -> None:
    """A central table (when the room is large enough) and 2-4 items against the walls."""
    rng, H = bld.rng, bld.out.height_m
    sp = bld.out.spaces[space_idx]
    (x0, y0), (x1, y1) = sp.lo, sp.hi
    taken: list[tuple[float, float, float, float]] = []  # footprints (x0, y0, x1, y1)
    doors = [d.center_xy for d in bld.out.doors if space_idx in (d.a, d.b)]

    def free(fp: tuple[float, float, float, float]) -> bool:
        for t in taken:
            if (
                fp[0] < t[2] + 0.1
                and t[0] < fp[2] + 0.1
                and fp[1] < t[3] + 0.1
                and t[1] < fp[3] + 0.1
            ):
                return False
        for dx, dy in doors:
            px, py = np.clip(dx, fp[0], fp[2]), np.clip(dy, fp[1], fp[3])
            if np.hypot(px - dx, py - dy) < DOOR_CLEAR_M:
                return False
        return True

    def add(
        fp: tuple[float, float, float, float], z0: float, z1: float, name: str, mat: int
    ) -> None:
        bld.out.boxes.append(
            Box(
                (fp[0], fp[1], z0), (fp[2], fp[3], z1), (mat,) * 6, "furniture", f"{sp.name}/{name}"
            )
        )

    loop_w = (x1 - x0) - 2 * LOOP_MARGIN_M
    loop_h = (y1 - y0) - 2 * LOOP_MARGIN_M
    tw = min(loop_w - 2 * TABLE_CLEAR_M, float(rng.uniform(0.7, 1.3)))
    th = min(loop_h - 2 * TABLE_CLEAR_M, float(rng.uniform(0.6, 0.9)))
    if tw >= 0.5 and th >= 0.5 and rng.random() < 0.8:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        top_z, mat = float(rng.uniform(0.7, 0.8)), bld.material()
        add((cx - tw / 2, cy - th / 2, cx + tw / 2, cy + th / 2), top_z - 0.04, top_z, "table", mat)
        for sx in (-1, 1):
            for sy in (-1, 1):
                lx, ly = cx + sx * (tw / 2 - 0.06), cy + sy * (th / 2 - 0.06)
                add((lx - 0.03, ly - 0.03, lx + 0.03, ly + 0.03), 0.0, top_z - 0.04, "leg", mat)
        taken.append((cx - tw / 2, cy - th / 2, cx + tw / 2, cy + th / 2))

    extra = rng.choice(["cabinet", "shelf", "sofa", "crate"], size=int(rng.integers(1, 4)))
    kinds = ["crate", *(str(k) for k in extra)]
    for i, kind in enumerate(kinds):
        if kind == "crate":
            s = float(rng.uniform(0.4, WALL_DEPTH_MAX_M))
            w, d, hgt = s, s, s * float(rng.uniform(0.8, 1.3))
        elif kind == "cabinet":
            w, d, hgt = (
                float(rng.uniform(0.6, 1.4)),
                float(rng.uniform(0.4, 0.6)),
                float(rng.uniform(0.8, 1.2)),
            )
        elif kind == "shelf":
            w, d, hgt = (
                float(rng.uniform(0.6, 1.2)),
                float(rng.uniform(0.3, 0.45)),
                float(rng.uniform(1.6, min(2.2, H - 0.2))),
            )
        else:
            w, d, hgt = float(rng.uniform(1.4, 2.0)), WALL_DEPTH_MAX_M, float(rng.uniform(0.4, 0.6))
        for _ in range(30):
            side = int(rng.integers(4))
            gap = float(rng.uniform(0.0, 0.05))
            if side in (0, 1):  # against a wall normal to y (bottom/top)
                u = float(rng.uniform(x0, max(x0, x1 - w)))
                fp = (
                    (u, y0 + gap, u + w, y0 + gap + d)
                    if side == 0
                    else (u, y1 - gap - d, u + w, y1 - gap)
                )
            else:
                u = float(rng.uniform(y0, max(y0, y1 - w)))
                fp = (
                    (x0 + gap, u, x0 + gap + d, u + w)
                    if side == 2
                    else (x1 - gap - d, u, x1 - gap, u + w)
                )
            if fp[2] <= x1 and fp[3] <= y1 and free(fp):
                add(fp, 0.0, hgt, f"{kind}{i}", bld.material())
                taken.append(fp)
                break


def build_layout(config: SceneConfig, rng: np.random.Generator) -> Layout:
    """Build the boxes, spaces, doors and textures of a world (no trajectory, no event)."""
    bld = _Builder(config, rng)
    out = bld.out
    out.height_m = float(rng.uniform(2.5, 2.9))
    if config.kind == "room":
        w, d = float(rng.uniform(4.5, 6.0)), float(rng.uniform(4.5, 6.0))
        r = bld.add_space("room0", (0.0, 0.0), (w, d))
        bld.wall(1, 0.0, 0.0, w, "room0/south")
        bld.wall(1, d, 0.0, w, "room0/north")
        bld.wall(0, 0.0, 0.0, d, "room0/west")
        bld.wall(0, w, 0.0, d, "room0/east")
        out.rooms = [r]
        _furnish(bld, r)
        return out

    cw = float(rng.uniform(1.7, 2.1))
    n_top = int(rng.integers(2, 4))
    top_w = rng.uniform(4.2, 5.6, size=n_top)
    length = float(top_w.sum())
    n_bot = int(rng.integers(2, 4))
    bot_w = rng.uniform(0.8, 1.2, size=n_bot)
    bot_w = bot_w / bot_w.sum() * length
    if bot_w.min() < 4.2:
        n_bot = max(1, int(length // 4.4))
        bot_w = np.full(n_bot, length / n_bot)
    top_x = np.concatenate([[0.0], np.cumsum(top_w)])
    bot_x = np.concatenate([[0.0], np.cumsum(bot_w)])
    corridor = bld.add_space("corridor", (0.0, 0.0), (length, cw))
    out.corridor = corridor
    rooms_top, rooms_bot = [], []
    depth_top = rng.uniform(4.2, 5.6, size=n_top)
    depth_bot = rng.uniform(4.2, 5.6, size=n_bot)
    for i in range(n_top):
        rooms_top.append(
            bld.add_space(f"room_n{i}", (top_x[i], cw), (top_x[i + 1], cw + depth_top[i]))
        )
    for i in range(n_bot):
        rooms_bot.append(
            bld.add_space(f"room_s{i}", (bot_x[i], -depth_bot[i]), (bot_x[i + 1], 0.0))
        )
    out.rooms = rooms_top + rooms_bot

    # corridor <-> room walls with one doorway per room
    for i, r in enumerate(rooms_top):
        door = bld.door_between(corridor, r, 1, cw, top_x[i], top_x[i + 1])
        bld.wall(1, cw, top_x[i], top_x[i + 1], f"room_n{i}/south", door)
        bld.wall(1, cw + depth_top[i], top_x[i], top_x[i + 1], f"room_n{i}/north")
    for i, r in enumerate(rooms_bot):
        door = bld.door_between(corridor, r, 1, 0.0, bot_x[i], bot_x[i + 1])
        bld.wall(1, 0.0, bot_x[i], bot_x[i + 1], f"room_s{i}/north", door)
        bld.wall(1, -depth_bot[i], bot_x[i], bot_x[i + 1], f"room_s{i}/south")
    bld.wall(0, 0.0, 0.0, cw, "corridor/west")
    bld.wall(0, length, 0.0, cw, "corridor/east")
    # walls between neighbouring rooms (sometimes with a doorway: a loop that skips the corridor)
    for xs, depths, rooms, y_in, sign, tag in (
        (top_x, depth_top, rooms_top, cw, 1.0, "n"),
        (bot_x, depth_bot, rooms_bot, 0.0, -1.0, "s"),
    ):
        for i in range(len(rooms) + 1):
            d_here = [depths[j] for j in (i - 1, i) if 0 <= j < len(rooms)]
            y_far = y_in + sign * max(d_here)
            a, b = sorted((y_in, y_far))
            side_door: tuple[float, float] | None = None
            if 0 < i < len(rooms) and rng.random() < 0.5:
                shared = min(d_here)
                lo, hi = sorted((y_in, y_in + sign * shared))
                side_door = bld.door_between(rooms[i - 1], rooms[i], 0, float(xs[i]), lo, hi)
            bld.wall(0, float(xs[i]), a, b, f"rooms_{tag}/wall{i}", side_door)
    for r in out.rooms:
        _furnish(bld, r)
    return out
