"""make_scene: layout + textures + trajectory + event, deterministic by seed."""

from __future__ import annotations

import dataclasses

import numpy as np

from mirage_ros.core.errors import ConfigError
from mirage_ros.sim.config import SceneConfig
from mirage_ros.sim.layout import DOOR_CLEAR_M, Layout, build_layout
from mirage_ros.sim.scene import Scene
from mirage_ros.sim.textures import MaterialLibrary
from mirage_ros.sim.trajectory import Trajectory, plan_route

__all__ = ["ROBOT_RADIUS_M", "make_scene", "path_clearance_m"]

#: the walking path keeps at least this horizontal distance from walls and objects
ROBOT_RADIUS_M = 0.3
_ATTEMPTS = 8


def _duration_s(config: SceneConfig) -> float:
    return (config.frames - 1) / config.camera_rate_hz


def _visits(scene: Scene, traj: Trajectory, config: SceneConfig) -> np.ndarray:
    """(frames,) index of the space the robot is in at each frame."""
    t = np.arange(config.frames) / config.camera_rate_hz
    return scene.space_index(traj.position_xy(t))


def _apply_event(
    scene: Scene, layout: Layout, traj: Trajectory, config: SceneConfig, rng: np.random.Generator
) -> None:
    """Remove or move a crate in a room seen both before and after the event frame."""
    ev = config.resolved_event_frame
    stamp = config.stamp_ns(ev)
    where = _visits(scene, traj, config)
    crates = [i for i, b in enumerate(scene.boxes) if b.kind == "furniture" and "/crate" in b.name]

    def room_of(i: int) -> int:
        c = (scene.lo[i, :2] + scene.hi[i, :2]) / 2
        return int(scene.space_index(c[None])[0])

    def score(i: int) -> int:
        r = room_of(i)
        return int(np.any(where[:ev] == r)) + int(np.any(where[ev:] == r))

    if not crates:
        raise ConfigError("the scene has no object that an event could move or remove")
    best = max(score(i) for i in crates)
    candidates = [i for i in crates if score(i) == best]
    order = [candidates[j] for j in rng.permutation(len(candidates))] + [
        i for i in crates if i not in candidates
    ]
    for idx in order:
        box = scene.boxes[idx]
        if config.event == "remove":
            scene.boxes[idx] = dataclasses.replace(box, t_end_ns=stamp)
            scene.event_box, scene.event_stamp_ns = idx, stamp
            scene.refresh()
            return
        moved = _moved_copy(scene, layout, idx, rng)
        if moved is None:
            continue
        scene.boxes[idx] = dataclasses.replace(box, t_end_ns=stamp)
        scene.boxes.append(
            dataclasses.replace(
                box, lo=moved[0], hi=moved[1], t_start_ns=stamp, name=box.name + "/moved"
            )
        )
        scene.event_box, scene.moved_box = idx, len(scene.boxes) - 1
        scene.event_stamp_ns = stamp
        scene.refresh()
        return
    raise ConfigError("no object in the scene could be moved without a collision")


def _moved_copy(
    scene: Scene, layout: Layout, idx: int, rng: np.random.Generator
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Slide the box along the wall it stands against to a free spot (None if none is free)."""
    lo, hi = scene.lo[idx].copy(), scene.hi[idx].copy()
    room = int(scene.space_index(((lo[:2] + hi[:2]) / 2)[None])[0])
    sp = layout.spaces[room]
    gaps = [lo[1] - sp.lo[1], sp.hi[1] - hi[1], lo[0] - sp.lo[0], sp.hi[0] - hi[0]]
    along = 0 if int(np.argmin(gaps)) < 2 else 1  # the axis parallel to that wall
    others = [i for i, b in enumerate(scene.boxes) if b.kind == "furniture" and i != idx]
    doors = [np.asarray(d.center_xy) for d in layout.doors if room in (d.a, d.b)]
    for shift in rng.permutation(np.array([-1.5, -1.2, -0.9, -0.7, 0.7, 0.9, 1.2, 1.5])):
        nlo, nhi = lo.copy(), hi.copy()
        nlo[along] += shift
        nhi[along] += shift
        if nlo[along] < sp.lo[along] or nhi[along] > sp.hi[along]:
            continue
        clash = any(
            np.all(nlo[:2] < scene.hi[o, :2] + 0.1) and np.all(scene.lo[o, :2] - 0.1 < nhi[:2])
            for o in others
        )
        near_door = any(
            np.linalg.norm(np.clip(d, nlo[:2], nhi[:2]) - d) < DOOR_CLEAR_M for d in doors
        )
        if not clash and not near_door:
            return (tuple(float(v) for v in nlo), tuple(float(v) for v in nhi))
    return None


def _build(config: SceneConfig, attempt: int) -> Scene:
    seed = [config.seed, attempt]
    layout = build_layout(config, np.random.default_rng([*seed, 1]))
    library = MaterialLibrary(layout.textures)
    scene = Scene(
        layout.boxes, layout.spaces, layout.doors, library, layout.height_m, seed=config.seed
    )
    rng = np.random.default_rng([*seed, 2])
    light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
    scene.light_dir = light / np.linalg.norm(light)
    scene.ambient = float(rng.uniform(0.3, 0.42))
    duration = _duration_s(config)
    route = plan_route(layout, np.random.default_rng([*seed, 3]), config.speed_mps * duration)
    traj = Trajectory(config, route, np.random.default_rng([*seed, 4]), duration)
    scene.trajectory = traj
    if config.event != "none":
        _apply_event(scene, layout, traj, config, np.random.default_rng([*seed, 5]))
    return scene


def path_clearance_m(scene: Scene, traj: Trajectory) -> float:
    """Smallest horizontal distance from the walked path to any wall or object, at any time."""
    xy = traj.xy_grid[::5]
    stamps = [None] if scene.event_stamp_ns is None else [None, scene.event_stamp_ns]
    return float(min(scene.clearance_m(xy, s).min() for s in stamps))


def make_scene(config: SceneConfig) -> Scene:
    """Build the world of `config` (with its trajectory in ``scene.trajectory``).

    Deterministic: the same config gives the same boxes, textures and poses. A layout whose
    path would pass closer than ROBOT_RADIUS_M to anything is rebuilt from the next sub-seed.
    """
    for attempt in range(_ATTEMPTS):
        scene = _build(config, attempt)
        traj = scene.trajectory
        assert isinstance(traj, Trajectory)
        if path_clearance_m(scene, traj) >= ROBOT_RADIUS_M:
            return scene
    raise ConfigError(f"could not build a collision-free scene for seed {config.seed}")
