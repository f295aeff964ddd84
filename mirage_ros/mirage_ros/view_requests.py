"""Validating and resolving view requests; path confinement for memory files.

Ring 2 (no rclpy): works on any PredictViews-request-like object. Every rejection is a
:class:`MirageError` whose message says what to fix, raised before the memory is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirage_ros import conversions as conv
from mirage_ros.core.errors import MirageError, RequestError
from mirage_ros.node_config import NodeConfig
from mirage_ros.transforms import TransformBuffer

__all__ = [
    "RenderedViews",
    "RequestResolver",
    "ResolvedRequest",
    "ViewRequest",
    "confine_path",
]


@dataclass
class ViewRequest:
    """What a service call, a trajectory pose or a query pose asks for."""

    poses: list[Any]  # geometry_msgs/PoseStamped-like
    body_frame: str = ""
    camera_info: Any = None  # sensor_msgs/CameraInfo-like; None or width 0 = last real camera
    with_depth: bool = False
    with_confidence: bool = False

    @classmethod
    def from_msg(cls, request: Any) -> ViewRequest:
        return cls(
            poses=list(request.poses),
            body_frame=str(request.body_frame),
            camera_info=request.camera_info,
            with_depth=bool(request.with_depth),
            with_confidence=bool(request.with_confidence),
        )


@dataclass
class ResolvedRequest:
    poses: list[np.ndarray]  # T_fixed_camera (4, 4) per view
    camera: tuple[np.ndarray, int, int]  # (K (3, 3), width, height)
    camera_frame: str
    stamp_ns: int
    with_depth: bool = False
    with_confidence: bool = False


@dataclass
class RenderedViews:
    rgb_u8: np.ndarray  # (B, H, W, 3) uint8
    confidence: np.ndarray  # (B, H, W) float32 in [0, 1]
    depth_m: np.ndarray  # (B, H, W) float32, NaN unknown
    coverage_fraction: list[float] = field(default_factory=list)


class RequestResolver:
    """Turns requests into camera poses in the fixed frame, and renders them on the worker."""

    def __init__(self, tf_buffer: TransformBuffer, engine: Any) -> None:
        self.tf = tf_buffer
        self.engine = engine

    def resolve(self, request: ViewRequest, config: NodeConfig) -> ResolvedRequest:
        n = len(request.poses)
        if n == 0:
            raise RequestError("the request holds no poses")
        if n > config.max_poses_per_request:
            raise RequestError(
                f"{n} poses requested; at most max_poses_per_request="
                f"{config.max_poses_per_request} are allowed (split the request)"
            )
        camera, camera_frame = self._camera(request.camera_info, config)
        T_body_camera = None
        if request.body_frame:
            T_body_camera = self._lookup(request.body_frame, camera_frame, 0, "body_frame")
        poses = []
        stamp_ns = 0
        for i, pose in enumerate(request.poses):
            frame = str(pose.header.frame_id)
            if not frame:
                raise RequestError(f"pose {i}: header.frame_id is empty; name the pose's frame")
            try:
                T_frame_pose = conv.pose_from_msg(pose.pose)
                stamp = conv.stamp_ns_from_msg(pose.header.stamp)
            except MirageError as exc:
                raise RequestError(f"pose {i}: {exc}") from exc
            stamp_ns = max(stamp_ns, stamp)
            if frame == config.fixed_frame:
                T_fixed_frame = np.eye(4)
            else:
                T_fixed_frame = self._lookup(config.fixed_frame, frame, stamp, f"pose {i}")
            T = T_fixed_frame @ T_frame_pose
            if T_body_camera is not None:
                T = T @ T_body_camera
            poses.append(T)
        return ResolvedRequest(
            poses=poses,
            camera=camera,
            camera_frame=camera_frame,
            stamp_ns=stamp_ns,
            with_depth=request.with_depth,
            with_confidence=request.with_confidence,
        )

    def _lookup(self, target: str, source: str, stamp_ns: int, what: str) -> np.ndarray:
        try:
            return self.tf.lookup(target, source, stamp_ns)
        except MirageError as exc:
            raise RequestError(f"{what}: {exc}") from exc

    def _camera(self, info: Any, config: NodeConfig) -> tuple[tuple[np.ndarray, int, int], str]:
        last = self.engine.last_camera()
        if info is None or (int(info.width) == 0 and int(info.height) == 0):
            if last is None:
                raise RequestError(
                    "no camera has been integrated yet: pass a camera_info (virtual camera)"
                )
            K, width, height, frame = last
            return (K, width, height), frame
        try:
            K, width, height = conv.intrinsics_from_camera_info(info)
        except MirageError as exc:
            raise RequestError(f"camera_info: {exc}") from exc
        if max(width, height) > config.max_image_side_px:
            raise RequestError(
                f"camera_info: {width}x{height} exceeds max_image_side_px="
                f"{config.max_image_side_px}"
            )
        frame = str(info.header.frame_id) or (last[3] if last else "mirage_virtual_camera")
        return (K, width, height), frame

    def render(self, resolved: ResolvedRequest, batch: int) -> RenderedViews:
        """Render and decode every pose (call on the memory worker)."""
        K, width, height = resolved.camera
        predictor = self.engine.predictor
        K_t = torch.as_tensor(K, dtype=torch.float32)
        rgb, conf, depth, cover = [], [], [], []
        for start in range(0, len(resolved.poses), batch):
            T = torch.as_tensor(
                np.stack(resolved.poses[start : start + batch]), dtype=torch.float32
            )
            out = predictor.predict(K_t, T, height, width)
            rgb.append(
                (out.rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            )
            conf.append(out.confidence.float().cpu().numpy())
            depth.append(out.depth_m.float().cpu().numpy())
            cover.extend(float(c) for c in out.coverage_fraction)
        return RenderedViews(
            rgb_u8=np.concatenate(rgb),
            confidence=np.concatenate(conf),
            depth_m=np.concatenate(depth),
            coverage_fraction=cover,
        )

    def colored_points(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Voxel positions (N, 3) float32 and decoded colours (N, 3) uint8 (on the worker)."""
        predictor = self.engine.predictor
        xyz, latents, _weight = predictor.memory.points()
        if xyz.shape[0] > limit:  # deterministic thinning
            keep = torch.linspace(0, xyz.shape[0] - 1, limit, device=xyz.device).long()
            xyz, latents = xyz[keep], latents[keep]
        with torch.no_grad():
            rgb = predictor.codec.preview_rgb(latents.float())
        return (
            xyz.float().cpu().numpy(),
            (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy(),
        )


def confine_path(path_str: str, root: Path, allow_any_path: bool) -> Path:
    """Resolve a memory file path; refuse escapes from ``root`` (symlinks included).

    Relative paths are taken relative to ``root``. With ``allow_any_path`` any absolute path
    is accepted.
    """
    if not path_str or "\x00" in path_str:
        raise RequestError("path is empty or contains a NUL byte")
    root = Path(os.path.expanduser(str(root)))
    path = Path(os.path.expanduser(path_str))
    if not path.is_absolute():
        path = root / path
    resolved = path.resolve()  # follows symlinks, so a link pointing outside is caught
    if allow_any_path:
        return resolved
    root_resolved = root.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise RequestError(
            f"path {path_str!r} resolves to {resolved}, outside memory_dir {root_resolved} "
            "(set allow_any_path to permit it)"
        )
    return resolved
