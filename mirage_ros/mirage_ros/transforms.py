"""TransformBuffer: a time-indexed transform tree with interpolation (tf2_ros stand-in).

Used by the node (filled from /tf and /tf_static callbacks) and by offline bag evaluation, so
both see identical poses. Like tf2, each child frame has one parent (a new parent replaces the
old one), static transforms hold at all times, dynamic ones are interpolated between the two
bracketing stamps (linear translation, quaternion slerp), and ``stamp_ns == 0`` means the
latest time at which the whole chain is available. Thread-safe.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import transforms3d

from mirage_ros.core.errors import ConfigError, MirageError, TransformError

__all__ = ["TransformBuffer"]

_MAX_DEPTH = 256


@dataclass
class _Edge:
    """Transforms from ``parent`` to one child: static, or a sorted history."""

    parent: str
    static: bool
    T_static: np.ndarray | None = None
    stamps: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    quats_wxyz: list[np.ndarray] = field(default_factory=list)


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return np.asarray(q / np.linalg.norm(q))
    theta = math.acos(min(1.0, dot))
    s = math.sin(theta)
    return np.asarray((math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / s)


def _rigid_inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform: [R^T | -R^T t]."""
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def _matrix(translation: np.ndarray, q_wxyz: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = transforms3d.quaternions.quat2mat(q_wxyz)
    T[:3, 3] = translation
    return T


class TransformBuffer:
    """Transforms between named frames over time.

    Each frame's history is kept sorted by stamp (bisect insertion), so transforms may arrive
    out of order. Time going backwards (a bag played in a loop, a simulator reset): the old
    history stays and lookups at the new, earlier stamps interpolate between whatever brackets
    them, and the pruning keeps the newest ``cache_time_s``, so old-loop entries can outlive
    new ones; call :meth:`clear` when the clock jumps back (the engine does on a clock jump).

    Args:
        cache_time_s: dynamic transforms older than this behind the newest of their frame are
            dropped (bounded memory); ``inf`` keeps everything (offline bag reading).
    """

    def __init__(self, cache_time_s: float = 30.0) -> None:
        if not cache_time_s > 0:  # also refuses NaN
            raise ConfigError(
                f"cache_time_s must be > 0 (inf keeps everything), got {cache_time_s}"
            )
        self.cache_ns = int(min(cache_time_s, 1e9) * 1e9)
        self._edges: dict[str, _Edge] = {}
        self._names: set[str] = set()  # every child and parent frame
        self._chains: dict[str, list[str]] = {}  # frame -> [frame, parent, ..., root]
        self._lock = threading.Lock()

    def _structure_changed(self) -> None:
        """Recompute the frame set and forget cached chains (lock held)."""
        self._names = set(self._edges) | {e.parent for e in self._edges.values()}
        self._chains = {}

    # ------------------------------------------------------------------ writing
    def set_transform(
        self,
        parent: str,
        child: str,
        T_parent_child: np.ndarray,
        stamp_ns: int,
        static: bool,
        q_wxyz: np.ndarray | None = None,
    ) -> None:
        """Add one transform (``T_parent_child`` maps child points into the parent frame).

        ``q_wxyz``: its rotation as the unit quaternion it was made from, when the caller has one
        (a TF message): the matrix is then trusted to be a rotation and the quaternion is not
        recovered from it (an eigen-decomposition; /tf at 100 Hz pays for it on every message).
        """
        if not parent or not child:
            raise TransformError("frame ids must not be empty")
        if parent == child:
            raise TransformError(f"frame {child!r} cannot be its own parent")
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise TransformError(f"transform {parent} -> {child} is not a finite 4x4 matrix")
        R = T[:3, :3]
        if q_wxyz is None and (
            not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0
        ):
            raise TransformError(f"transform {parent} -> {child} is not a rotation")
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or edge.static != static:
                edge = _Edge(parent=parent, static=static)  # re-parenting replaces (tf2)
                self._edges[child] = edge
                self._structure_changed()
            if static:
                edge.T_static = T.copy()
                return
            q = transforms3d.quaternions.mat2quat(R) if q_wxyz is None else q_wxyz
            i = bisect.bisect_left(edge.stamps, stamp_ns)
            if i < len(edge.stamps) and edge.stamps[i] == stamp_ns:
                edge.translations[i], edge.quats_wxyz[i] = T[:3, 3].copy(), q
            else:
                edge.stamps.insert(i, stamp_ns)
                edge.translations.insert(i, T[:3, 3].copy())
                edge.quats_wxyz.insert(i, q)
            cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_ns)
            if cut > 0:
                del edge.stamps[:cut], edge.translations[:cut], edge.quats_wxyz[:cut]

    def add_tf_message(self, msg: Any, static: bool) -> tuple[int, int]:
        """Add every transform of a TFMessage-like; bad entries are skipped and counted.

        Returns (accepted, rejected).
        """
        from mirage_ros.conversions import stamp_ns_from_msg, transform_and_quat_from_msg

        accepted = rejected = 0
        for t in getattr(msg, "transforms", []):
            try:
                T, q_wxyz = transform_and_quat_from_msg(t.transform)
                stamp = stamp_ns_from_msg(t.header.stamp)
                self.set_transform(
                    str(t.header.frame_id).lstrip("/"),
                    str(t.child_frame_id).lstrip("/"),
                    T,
                    stamp,
                    static,
                    q_wxyz,
                )
                accepted += 1
            except (MirageError, AttributeError, TypeError, ValueError):
                rejected += 1
        return accepted, rejected

    def clear(self, keep_static: bool = True) -> None:
        """Forget dynamic transforms (and static ones unless ``keep_static``)."""
        with self._lock:
            if keep_static:
                self._edges = {c: e for c, e in self._edges.items() if e.static}
            else:
                self._edges = {}
            self._structure_changed()

    # ------------------------------------------------------------------ reading
    def frames(self) -> list[str]:
        """Every frame named as a child or a parent, sorted."""
        with self._lock:
            return sorted(self._names)

    def all_frames_as_string(self) -> str:
        with self._lock:
            lines = [
                f"{c} <- {e.parent} ({'static' if e.static else f'{len(e.stamps)} stamps'})"
                for c, e in sorted(self._edges.items())
            ]
        return "\n".join(lines)

    def _chain(self, frame: str) -> list[str]:
        """[frame, parent, grandparent, ..., root] (lock held, cached); raises on a cycle."""
        cached = self._chains.get(frame)
        if cached is not None:
            return cached
        chain = [frame]
        seen = {frame}
        while chain[-1] in self._edges:
            parent = self._edges[chain[-1]].parent
            if parent in seen or len(chain) > _MAX_DEPTH:
                raise TransformError(
                    f"transform tree has a cycle through {parent!r}: {' -> '.join(chain)}"
                )
            chain.append(parent)
            seen.add(parent)
        self._chains[frame] = chain
        return chain

    def _edge_range(self, child: str) -> tuple[int, int] | None:
        e = self._edges[child]
        return None if e.static else (e.stamps[0], e.stamps[-1])

    def _edge_at(self, child: str, stamp_ns: int) -> np.ndarray:
        e = self._edges[child]
        if e.static:
            assert e.T_static is not None
            return e.T_static
        stamps = e.stamps
        if not stamps:
            raise TransformError(f"no transform {e.parent} -> {child} has been received")
        if stamp_ns < stamps[0] or stamp_ns > stamps[-1]:
            when = "past" if stamp_ns < stamps[0] else "future"
            gap = (stamps[0] - stamp_ns) if stamp_ns < stamps[0] else (stamp_ns - stamps[-1])
            raise TransformError(
                f"lookup of {e.parent} -> {child} would extrapolate {gap / 1e6:.1f} ms into the "
                f"{when}; available {stamps[0] / 1e9:.3f} .. {stamps[-1] / 1e9:.3f} s"
            )
        i = bisect.bisect_left(stamps, stamp_ns)
        if stamps[i] == stamp_ns:
            return _matrix(e.translations[i], e.quats_wxyz[i])
        t0, t1 = stamps[i - 1], stamps[i]
        a = (stamp_ns - t0) / (t1 - t0)
        trans = (1 - a) * e.translations[i - 1] + a * e.translations[i]
        return _matrix(trans, _slerp(e.quats_wxyz[i - 1], e.quats_wxyz[i], a))

    def _unknown(self, frame: str) -> TransformError:
        known = sorted(self._names)
        return TransformError(
            f"frame {frame!r} does not exist; known frames: {', '.join(known) or '(none)'}"
        )

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        """``T_target_source`` (4, 4) at ``stamp_ns`` (0 = latest common time)."""
        target_frame, source_frame = target_frame.lstrip("/"), source_frame.lstrip("/")
        with self._lock:
            for f in (target_frame, source_frame):
                if f not in self._names:
                    raise self._unknown(f)
            if target_frame == source_frame:
                return np.eye(4)
            up_src = self._chain(source_frame)
            up_tgt = self._chain(target_frame)
            tgt_set = set(up_tgt)
            common = next((f for f in up_src if f in tgt_set), None)
            if common is None:
                raise TransformError(
                    f"no transform path between {target_frame!r} (tree rooted at "
                    f"{up_tgt[-1]!r}) and {source_frame!r} (tree rooted at {up_src[-1]!r})"
                )
            src_edges = up_src[: up_src.index(common)]
            tgt_edges = up_tgt[: up_tgt.index(common)]
            if stamp_ns == 0:
                ends = [r[1] for c in src_edges + tgt_edges if (r := self._edge_range(c))]
                stamp_ns = min(ends) if ends else 0
            T_common_source = np.eye(4)
            for child in src_edges:  # source -> ... -> common
                T_common_source = self._edge_at(child, stamp_ns) @ T_common_source
            T_common_target = np.eye(4)
            for child in tgt_edges:
                T_common_target = self._edge_at(child, stamp_ns) @ T_common_target
        return _rigid_inverse(T_common_target) @ T_common_source

    def can_transform(self, target_frame: str, source_frame: str, stamp_ns: int) -> bool:
        """Whether :meth:`lookup` would succeed; never raises."""
        try:
            self.lookup(target_frame, source_frame, stamp_ns)
        except MirageError:
            return False
        return True
