"""Test harness: DDS on loopback with a fresh domain, and the `gpu` / `ros` markers.

The environment is set here at import time, before any test can import rclpy, so running
pytest by hand is as safe as `make test`.
"""

from __future__ import annotations

import importlib.util
import os
import random

import pytest
from mirage_ros.dds import use_large_image_profile

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if "ROS_DOMAIN_ID" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(5, 94))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
use_large_image_profile()  # camera-rate images on Fast DDS: see mirage_ros/dds


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _ros_available() -> bool:
    for name in ("rclpy", "mirage_ros_interfaces", "tf2_msgs"):
        if importlib.util.find_spec(name) is None:
            return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="no CUDA device")
    skip_ros = pytest.mark.skip(
        reason="rclpy or the built interfaces are missing (run `make setup`, source scripts/env.sh)"
    )
    has_cuda = _cuda_available()
    has_ros = _ros_available()
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "ros" in item.keywords and not has_ros:
            item.add_marker(skip_ros)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """Run a test on the CPU and, where CUDA is present, on the GPU."""
    return str(request.param)
