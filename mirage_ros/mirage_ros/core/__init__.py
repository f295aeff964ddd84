"""mirage_ros.core: the latent spatial memory, its geometry and config (torch + numpy only).

Never imports ROS. Public API: see ``__all__``.
"""

from __future__ import annotations

from mirage_ros.core.baselines import AppendLatentCloud, PixelPointCloud, PointCloudConfig
from mirage_ros.core.config import MemoryConfig, resolve_device
from mirage_ros.core.geometry import (
    depth_at_stride,
    invert_pose,
    project,
    scale_intrinsics,
    transform_points,
    unproject,
    validate_intrinsics,
    validate_pose,
)
from mirage_ros.core.memory import IntegrateStats, LatentSpatialMemory, RenderResult
from mirage_ros.core.persistence import FORMAT_VERSION, read_memory_file

__all__ = [
    "FORMAT_VERSION",
    "AppendLatentCloud",
    "IntegrateStats",
    "LatentSpatialMemory",
    "MemoryConfig",
    "PixelPointCloud",
    "PointCloudConfig",
    "RenderResult",
    "depth_at_stride",
    "invert_pose",
    "project",
    "read_memory_file",
    "resolve_device",
    "scale_intrinsics",
    "transform_points",
    "unproject",
    "validate_intrinsics",
    "validate_pose",
]
