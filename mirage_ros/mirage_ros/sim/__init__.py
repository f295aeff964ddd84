"""Synthetic indoor worlds for tests, training, the demo and `mirage record-synthetic`.

Build a world from a :class:`SceneConfig`, render any view with :func:`render_view`, iterate the
frames of its exploring-and-revisiting trajectory with :class:`SyntheticSequence`, and write them
as a robot-like rosbag with :func:`write_bag`. Never imports rclpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mirage_ros.sim.config import SceneConfig
from mirage_ros.sim.raycast import render_view, render_view_reference
from mirage_ros.sim.scene import Box, Door, Scene, Space
from mirage_ros.sim.sequence import FRAME_IDS, Frame, SyntheticSequence
from mirage_ros.sim.textures import PATTERN_SPLIT, PHOTO_SPLIT
from mirage_ros.sim.world import make_scene

if TYPE_CHECKING:
    from mirage_ros.sim.record import write_bag

__all__ = [
    "FRAME_IDS",
    "PATTERN_SPLIT",
    "PHOTO_SPLIT",
    "Box",
    "Door",
    "Frame",
    "Scene",
    "SceneConfig",
    "Space",
    "SyntheticSequence",
    "make_scene",
    "render_view",
    "render_view_reference",
    "write_bag",
]


def __getattr__(name: str) -> Any:
    if name == "write_bag":  # rosbags is imported only when bags are written
        from mirage_ros.sim.record import write_bag

        return write_bag
    raise AttributeError(name)
