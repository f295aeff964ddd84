"""SceneConfig: everything that defines a synthetic sequence, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mirage_ros.core.errors import ConfigError

__all__ = ["EVENTS", "KINDS", "SceneConfig"]

KINDS = ("apartment", "room")
EVENTS = ("none", "move", "remove")


@dataclass(frozen=True)
class SceneConfig:
    """A synthetic world, its camera and its trajectory. Same config -> identical frames."""

    seed: int = 0
    """Seeds the layout, textures, lighting and trajectory (independent streams)."""
    kind: str = "apartment"
    """"apartment": rooms on both sides of a corridor, doorways; "room": one furnished room."""
    texture_set: str = "all"
    """"train" | "test" | "all": disjoint photo and pattern groups (see sim.textures)."""
    width: int = 320
    """Image width, pixels."""
    height: int = 240
    """Image height, pixels."""
    fov_deg: float = 70.0
    """Horizontal field of view, degrees (square pixels; used unless fx_px is set)."""
    fx_px: float | None = None
    """Focal length in pixels (fx = fy); overrides fov_deg when set."""
    frames: int = 600
    """Number of camera frames in the sequence."""
    camera_rate_hz: float = 10.0
    """Camera frame rate."""
    tf_rate_hz: float = 50.0
    """Rate of /tf messages written to bags (map->odom, odom->base_link)."""
    speed_mps: float = 0.45
    """Walking speed of the robot along its path."""
    camera_height_m: float = 1.3
    """Height of the camera optical centre above the floor."""
    camera_pitch_deg: float = 10.0
    """Downward pitch of the camera (positive looks down)."""
    look_around_deg: float = 30.0
    """Amplitude of the yaw oscillation around the walking direction."""
    event: str = "none"
    """"none" | "move" | "remove": an object is moved or removed at event_frame."""
    event_frame: int | None = None
    """Frame index at which the event happens (default: frames // 2)."""
    texture_px: int = 256
    """Side of every texture image in texels (power of two)."""
    start_time_s: int = 1_700_000_000
    """Stamp of the first frame, seconds since the epoch (so stamps look real)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.texture_set not in ("train", "test", "all"):
            raise ConfigError(f"texture_set must be train|test|all, got {self.texture_set!r}")
        if self.event not in EVENTS:
            raise ConfigError(f"event must be one of {EVENTS}, got {self.event!r}")
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise ConfigError(f"image size must be 8..8192 px, got {self.width}x{self.height}")
        if not 10.0 <= self.fov_deg <= 150.0:
            raise ConfigError(f"fov_deg must be in [10, 150], got {self.fov_deg}")
        if self.fx_px is not None and not (math.isfinite(self.fx_px) and self.fx_px > 0):
            raise ConfigError(f"fx_px must be positive, got {self.fx_px}")
        if self.frames < 1:
            raise ConfigError(f"frames must be >= 1, got {self.frames}")
        for name in ("camera_rate_hz", "tf_rate_hz", "speed_mps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.tf_rate_hz < self.camera_rate_hz:
            raise ConfigError("tf_rate_hz must be >= camera_rate_hz")
        if not 0.3 <= self.camera_height_m <= 2.2:
            raise ConfigError(f"camera_height_m must be in [0.3, 2.2], got {self.camera_height_m}")
        if not -45.0 <= self.camera_pitch_deg <= 60.0:
            raise ConfigError(f"camera_pitch_deg must be in [-45, 60], got {self.camera_pitch_deg}")
        if not 0.0 <= self.look_around_deg <= 90.0:
            raise ConfigError(f"look_around_deg must be in [0, 90], got {self.look_around_deg}")
        if self.event_frame is not None and not 0 <= self.event_frame < self.frames:
            raise ConfigError(f"event_frame must be in [0, frames), got {self.event_frame}")
        if self.texture_px < 8 or self.texture_px & (self.texture_px - 1):
            raise ConfigError(f"texture_px must be a power of two >= 8, got {self.texture_px}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")

    @property
    def K(self) -> np.ndarray:
        """Pinhole intrinsics (3, 3) float64; principal point at the image centre."""
        fx = self.fx_px
        if fx is None:
            fx = 0.5 * self.width / math.tan(math.radians(self.fov_deg) / 2.0)
        return np.array(
            [[fx, 0.0, (self.width - 1) / 2.0], [0.0, fx, (self.height - 1) / 2.0], [0, 0, 1]],
            dtype=np.float64,
        )

    @property
    def resolved_event_frame(self) -> int:
        """event_frame, or frames // 2 when unset."""
        return self.frames // 2 if self.event_frame is None else self.event_frame

    def stamp_ns(self, index: int) -> int:
        """Stamp of frame `index` in nanoseconds (exact integer arithmetic)."""
        return self.start_time_s * 1_000_000_000 + round(index * 1e9 / self.camera_rate_hz)
