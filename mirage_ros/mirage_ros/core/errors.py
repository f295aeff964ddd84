"""The one errors module of mirage_ros.

Every error the package raises on purpose derives from :class:`MirageError`, so callers
(the node, the CLI) can catch exactly the project's own failures and report them in one
line, while real bugs still surface as tracebacks.
"""

from __future__ import annotations

__all__ = [
    "BagError",
    "CodecError",
    "ConfigError",
    "ConversionError",
    "EncodingError",
    "MemoryFileError",
    "MirageError",
    "PoseError",
    "RequestError",
    "ShapeError",
    "TransformError",
]


class MirageError(Exception):
    """Base class of every error mirage_ros raises deliberately."""


class ConfigError(MirageError, ValueError):
    """A configuration value is invalid (raised when a config object is built)."""


class ShapeError(MirageError, ValueError):
    """A tensor or array has the wrong shape, dtype or device for the call."""


class PoseError(MirageError, ValueError):
    """A pose is not a rigid transform (NaN/inf, zero or unnormalised quaternion, ...)."""


class MemoryFileError(MirageError):
    """A memory or weights file cannot be written or is refused on load."""


class CodecError(MirageError):
    """The encoder/decoder weights or their sidecar are missing, invalid or incompatible."""


class ConversionError(MirageError, ValueError):
    """A ROS message cannot be converted (size/step mismatch, truncated data, bad intrinsics)."""


class EncodingError(ConversionError):
    """An image encoding is not supported."""


class TransformError(MirageError):
    """A transform cannot be looked up (unknown frame, no path, extrapolation, cycle)."""


class BagError(MirageError):
    """A bag cannot be read (missing, empty, truncated, topics not found)."""


class RequestError(MirageError, ValueError):
    """A service/action request is invalid; the message says what to fix."""
