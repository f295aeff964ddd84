"""The ring rule: mirage_ros.core imports torch and numpy, never ROS."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN_PREFIXES = (
    "rclpy",
    "rosbags",
    "sensor_msgs",
    "geometry_msgs",
    "std_msgs",
    "nav_msgs",
    "tf2_msgs",
    "mirage_ros_interfaces",
    "cv2",
    "mirage_ros.node",
    "mirage_ros.params",
)


def _modules_after_import(module: str) -> list[str]:
    code = (
        "import importlib, json, sys, pkgutil\n"
        f"import {module} as m\n"
        "for info in pkgutil.walk_packages(m.__path__, m.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_core_and_all_its_submodules_import_no_ros_module() -> None:
    loaded = _modules_after_import("mirage_ros.core")
    offenders = [m for m in loaded if m.startswith(FORBIDDEN_PREFIXES)]
    assert offenders == []
    assert "torch" in loaded  # the check is meaningful: core really was imported


def test_cli_help_does_not_import_rclpy() -> None:
    code = (
        "import sys, json, contextlib, io\n"
        "from mirage_ros.cli import build_parser\n"
        "build_parser([])\n"
        "print(json.dumps('rclpy' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip()) is False
