"""DDS settings for processes that start rclpy (ring 2: no rclpy import here).

:func:`use_large_image_profile` points Fast DDS at the shipped profile for camera-rate images
(see ``fastdds_large_images.xml`` for the measured reason), unless the user chose a profile or
another RMW. Call it before ``rclpy.init``; ``scripts/env.sh`` and the test harness export the
same variable so every process of a run agrees.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["PROFILE_PATH", "use_large_image_profile"]

PROFILE_PATH = Path(__file__).resolve().parent / "fastdds_large_images.xml"
_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def use_large_image_profile(env: MutableMapping[str, str] | None = None) -> str | None:
    """Set FASTDDS_DEFAULT_PROFILES_FILE to the shipped profile where nothing else is chosen.

    Returns the path set, or None when the user's own profile or a non-Fast-DDS RMW is in use.
    """
    env = os.environ if env is None else env
    rmw = env.get("RMW_IMPLEMENTATION", "")
    if rmw and not rmw.startswith("rmw_fastrtps"):
        return None
    if any(env.get(name) for name in _PROFILE_VARIABLES):
        return None
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE_PATH)
    return str(PROFILE_PATH)
