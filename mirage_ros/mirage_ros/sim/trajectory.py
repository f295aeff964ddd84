"""The robot's path: explore rooms, turn away, come back (revisits), keep clear of everything.

The route is a polyline through door nodes and a walking loop per room (``LOOP_MARGIN_M`` from
the walls, so wall furniture and the central table are cleared by construction), smoothed with
Chaikin corner cutting and walked at constant speed. The base yaw follows the walking direction
plus a look-around oscillation and occasional look-backs (the robot turns away and back).

Frames: ``map`` (world) -> ``odom`` (slowly drifting) -> ``base_link`` (x forward, z up, on the
floor) -> ``camera_color_optical_frame`` (z forward, x right, y down).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from transforms3d.axangles import axangle2mat

from mirage_ros.core.errors import ConfigError
from mirage_ros.sim.config import SceneConfig
from mirage_ros.sim.layout import LOOP_MARGIN_M, Layout
from mirage_ros.sim.scene import Door

__all__ = ["T_base_camera_from_config", "Trajectory", "chaikin", "plan_route"]

#: the route runs this far past the last frame, so smoothing near its end never reaches a frame
#: (a longer sequence of the same seed then starts with exactly the same poses)
ROUTE_MARGIN_M = 6.0
#: how fast the robot turns on the spot at a U-turn
TURN_RATE_RAD_S = 0.9

_R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def T_base_camera_from_config(config: SceneConfig) -> np.ndarray:
    """(4, 4) float64 static transform base_link -> camera optical frame (pitched down)."""
    T = np.eye(4)
    T[:3, :3] = (
        axangle2mat([0.0, 1.0, 0.0], math.radians(config.camera_pitch_deg)) @ _R_BASE_OPTICAL
    )
    T[:3, 3] = (0.08, 0.0, config.camera_height_m)
    return T


def planar_T(x: np.ndarray, y: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(N,) x, y, yaw -> (N, 4, 4) float64 transforms (rotation about z, z = 0)."""
    n = np.asarray(x).shape[0]
    T = np.zeros((n, 4, 4))
    c, s = np.cos(yaw), np.sin(yaw)
    T[:, 0, 0], T[:, 0, 1], T[:, 1, 0], T[:, 1, 1] = c, -s, s, c
    T[:, 2, 2] = T[:, 3, 3] = 1.0
    T[:, 0, 3], T[:, 1, 3] = x, y
    return T


def chaikin(points: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Corner cutting of an open polyline (K, 2); endpoints kept. Stays in the polyline's hull."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        if len(p) < 3:
            return p
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        mid = np.empty((2 * (len(p) - 1), 2))
        mid[0::2], mid[1::2] = q, r
        p = np.concatenate([p[:1], mid[1:-1], p[-1:]])
    return p


class _Rooms:
    """Loop corners and door nodes of each room."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def corners(self, room: int) -> np.ndarray:
        s, m = self.layout.spaces[room], LOOP_MARGIN_M
        (x0, y0), (x1, y1) = s.lo, s.hi
        return np.array([[x0 + m, y0 + m], [x1 - m, y0 + m], [x1 - m, y1 - m], [x0 + m, y1 - m]])

    def node(self, room: int, door: Door) -> tuple[np.ndarray, int]:
        """The door's node on the room's loop and the loop edge (k: corner k -> k+1) it lies on."""
        s, m = self.layout.spaces[room], LOOP_MARGIN_M
        (x0, y0), (x1, y1) = s.lo, s.hi
        dx, dy = door.center_xy
        if door.axis == 1:
            if dy < (y0 + y1) / 2:
                return np.array([dx, y0 + m]), 0
            return np.array([dx, y1 - m]), 2
        if dx > (x0 + x1) / 2:
            return np.array([x1 - m, dy]), 1
        return np.array([x0 + m, dy]), 3

    def corridor_node(self, door: Door) -> np.ndarray:
        c = self.layout.spaces[door.a if door.a == self.layout.corridor else door.b]
        return np.array([door.center_xy[0], (c.lo[1] + c.hi[1]) / 2])


def _loop_walk(
    corners: np.ndarray, edge_in: int, edge_out: int, direction: int, extra: int
) -> list[np.ndarray]:
    """Corners walked from a node on edge_in to a node on edge_out, at least `extra` corners."""
    out: list[np.ndarray] = []
    k = (edge_in + 1) % 4 if direction > 0 else edge_in
    count = 0
    while True:
        out.append(corners[k])
        count += 1
        on_exit_edge = k in (edge_out, (edge_out + 1) % 4)
        if count >= extra and on_exit_edge:
            return out
        k = (k + direction) % 4


def plan_route(layout: Layout, rng: np.random.Generator, length_m: float) -> np.ndarray:
    """Waypoints (K, 2) of a route at least length_m + ROUTE_MARGIN_M long that revisits rooms.

    Visiting order: new, new, back to an earlier room, new, new, back, ... (cycling when every
    room has been seen). The first visit of a room walks its whole loop and on past the entry
    corner (the robot comes back to where it was, same heading, ~20 s later); later visits walk
    part of the loop or turn back at once.
    """
    rooms = _Rooms(layout)
    direction = {r: int(rng.choice([-1, 1])) for r in layout.rooms}
    pts: list[np.ndarray] = []

    def length() -> float:
        if len(pts) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(np.asarray(pts), axis=0), axis=1).sum())

    if layout.corridor is None:  # a single room: laps, reversing now and then
        r = layout.rooms[0]
        corners, k, d = rooms.corners(r), 0, direction[r]
        pts.append(corners[0])
        while length() < length_m + ROUTE_MARGIN_M:
            k = (k + d) % 4
            pts.append(corners[k])
            if rng.random() < 0.15:
                d = -d
        return np.asarray(pts)

    order = [int(r) for r in rng.permutation(layout.rooms)]
    n = len(order)
    visits: list[int] = []
    k = 0
    while len(visits) < 4 * n + 4:
        visits.append(order[k % n])
        if k % 2 == 1:
            visits.append(order[max(0, k - 2) % n])
        k += 1
    visits = [v for i, v in enumerate(visits) if i == 0 or v != visits[i - 1]]
    corridor = layout.corridor
    cdoor = {d.b if d.a == corridor else d.a: d for d in layout.doors if corridor in (d.a, d.b)}
    c = layout.spaces[corridor]
    first = rooms.corridor_node(cdoor[visits[0]])
    first[0] = np.clip(first[0] + rng.choice([-1.5, 1.5]), c.lo[0] + 0.6, c.hi[0] - 0.6)
    pts.append(first)  # start in the corridor, near the first room
    seen: set[int] = set()
    current: int | None = None
    entry_edge = 0
    i = 0
    while length() < length_m + ROUTE_MARGIN_M:
        target = visits[i % len(visits)]
        i += 1
        direct = [d for d in layout.doors if {d.a, d.b} == {current, target}]
        door = direct[0] if direct else cdoor[target]
        if current is not None:
            node_out, edge_out = rooms.node(current, door if direct else cdoor[current])
            # first visit: a full loop and on, past the entry corner again (a revisit with the
            # same heading); later visits: a U-turn (turn away and come back) or part of a loop
            if current not in seen:
                extra = int(rng.integers(6, 8))
            else:
                extra = 1 if rng.random() < 0.25 else int(rng.integers(2, 6))
            seen.add(current)
            pts.extend(
                _loop_walk(rooms.corners(current), entry_edge, edge_out, direction[current], extra)
            )
            pts.append(node_out)
            if not direct:
                pts.append(rooms.corridor_node(cdoor[current]))
        if not direct:
            pts.append(rooms.corridor_node(door))
        node_in, entry_edge = rooms.node(target, door)
        pts.append(node_in)
        current = target
    return np.asarray(pts)


class Trajectory:
    """Continuous poses of the robot: T_map_odom(t), T_map_base(t), T_world_camera(t)."""

    def __init__(
        self,
        config: SceneConfig,
        waypoints: np.ndarray,
        rng: np.random.Generator,
        duration_s: float,
    ) -> None:
        if len(waypoints) < 2:
            raise ConfigError("a trajectory needs at least two waypoints")
        self.config = config
        self.duration_s = duration_s
        self.waypoints = np.asarray(waypoints, dtype=np.float64)
        # a fixed number of draws, then child streams: a longer sequence of the same seed
        # starts with exactly the same poses (its frames are a superset)
        self.look_amp = math.radians(config.look_around_deg)
        self.look_period_s = float(rng.uniform(7.0, 11.0))
        self.look_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self.odom_yaw = (float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-2e-3, 2e-3)))
        self.odom_xy = (rng.uniform(-0.5, 0.5, size=2), rng.uniform(-0.01, 0.01, size=2))
        rng_turns = np.random.default_rng(int(rng.integers(2**62)))
        rng_back = np.random.default_rng(int(rng.integers(2**62)))
        self._build_timeline(rng_turns)
        # look-backs: the robot turns away (~100-160 deg) and back over back_dur_s, every ~25 s
        self.back_dur_s = 6.0
        back_t, back_amp = [], []
        t = float(rng_back.uniform(3.0, 13.0))
        while t < duration_s:
            back_t.append(t)
            back_amp.append(float(rng_back.uniform(1.7, 2.8) * rng_back.choice([-1.0, 1.0])))
            t += float(rng_back.uniform(18.0, 32.0))
        self.back_t = np.asarray(back_t)
        self.back_amp = np.asarray(back_amp)
        self.T_base_camera = T_base_camera_from_config(config)

    def _build_timeline(self, rng: np.random.Generator) -> None:
        """Tables t -> (x, y, heading): smoothed walking pieces joined by in-place turns.

        The waypoint polyline is cut at cusps (direction reversals, e.g. a U-turn); each piece
        is smoothed on its own (Chaikin keeps the cusp point), walked at constant speed, and the
        robot turns on the spot between pieces at TURN_RATE_RAD_S with eased acceleration.
        """
        wp = self.waypoints
        seg = np.diff(wp, axis=0)
        wp = wp[np.concatenate([[True], np.linalg.norm(seg, axis=1) > 1e-6])]
        seg = np.diff(wp, axis=0)
        unit = seg / np.linalg.norm(seg, axis=1, keepdims=True)
        cos_turn = (unit[1:] * unit[:-1]).sum(axis=1)
        cusps = [0, *[int(k) + 1 for k in np.flatnonzero(cos_turn < -0.5)], len(wp) - 1]
        speed = self.config.speed_mps
        t_parts: list[np.ndarray] = []
        xy_parts: list[np.ndarray] = []
        h_parts: list[np.ndarray] = []
        t_now, h_end = 0.0, None
        for a, b in itertools.pairwise(cusps):
            dense = chaikin(wp[a : b + 1], 5)
            d = np.linalg.norm(np.diff(dense, axis=0), axis=1)
            dense = dense[np.concatenate([[True], d > 1e-9])]
            s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
            s_grid = np.append(np.arange(0.0, s[-1], 0.02), s[-1])
            xy = np.stack([np.interp(s_grid, s, dense[:, i]) for i in (0, 1)], axis=1)
            ahead = np.stack([np.interp(s_grid + 0.25, s, dense[:, i]) for i in (0, 1)], axis=1)
            behind = np.stack([np.interp(s_grid - 0.25, s, dense[:, i]) for i in (0, 1)], axis=1)
            tangent = ahead - behind
            heading = np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0]))
            if h_end is not None:  # turn on the spot from h_end to this piece's heading
                delta = (heading[0] - h_end + math.pi) % (2.0 * math.pi) - math.pi
                if abs(delta) > math.pi - 0.05:
                    delta = math.pi * float(rng.choice([-1.0, 1.0]))
                heading = heading - heading[0] + h_end + delta
                turn_s = abs(delta) / TURN_RATE_RAD_S
                n = max(2, math.ceil(turn_s * 20))
                j = np.arange(1, n) / n
                t_parts.append(t_now + j * turn_s)
                xy_parts.append(np.repeat(xy[:1], n - 1, axis=0))
                h_parts.append(h_end + delta * 0.5 * (1.0 - np.cos(math.pi * j)))
                t_now += turn_s
            t_parts.append(t_now + s_grid / speed)
            xy_parts.append(xy)
            h_parts.append(heading)
            t_now = float(t_parts[-1][-1]) + 1e-3
            h_end = float(heading[-1])
        self.t_table = np.concatenate(t_parts)  # (M,) seconds, increasing
        self.xy_table = np.concatenate(xy_parts)  # (M, 2) metres
        self.heading_table = np.concatenate(h_parts)  # (M,) radians, continuous
        self.xy_grid = self.xy_table  # the walked path every <= 2 cm (clearance checks)
        self.length_m = float(np.linalg.norm(np.diff(self.xy_table, axis=0), axis=1).sum())

    def position_xy(self, t_s: np.ndarray) -> np.ndarray:
        """(N,) seconds -> (N, 2) base position in map (holds the last pose past the end)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        return np.stack([np.interp(t, self.t_table, self.xy_table[:, i]) for i in (0, 1)], axis=1)

    def yaw(self, t_s: np.ndarray) -> np.ndarray:
        """(N,) seconds -> (N,) base yaw in map, radians (continuous, not wrapped)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        yaw = np.interp(t, self.t_table, self.heading_table)
        yaw = yaw + self.look_amp * np.sin(2.0 * math.pi * t / self.look_period_s + self.look_phase)
        for t0, amp in zip(self.back_t, self.back_amp, strict=True):
            u = np.clip((t - t0) / self.back_dur_s, 0.0, 1.0)
            yaw = yaw + amp * 0.5 * (1.0 - np.cos(2.0 * math.pi * u))
        return np.asarray(yaw, dtype=np.float64)

    def T_map_base(self, t_s: np.ndarray) -> np.ndarray:
        """(N,) seconds -> (N, 4, 4)."""
        xy = self.position_xy(t_s)
        return planar_T(xy[:, 0], xy[:, 1], self.yaw(t_s))

    def T_map_odom(self, t_s: np.ndarray) -> np.ndarray:
        """(N,) seconds -> (N, 4, 4): a slow drift like a localiser's correction."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        xy = self.odom_xy[0][None] + self.odom_xy[1][None] * t[:, None]
        return planar_T(xy[:, 0], xy[:, 1], self.odom_yaw[0] + self.odom_yaw[1] * t)

    def T_world_camera(self, t_s: np.ndarray) -> np.ndarray:
        """(N,) seconds -> (N, 4, 4) camera optical frame in map."""
        return np.asarray(self.T_map_base(t_s) @ self.T_base_camera)
