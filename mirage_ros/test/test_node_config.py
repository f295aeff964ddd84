"""Node settings: validation, and config/mirage.yaml naming exactly the declared parameters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ConfigError
from mirage_ros.node_config import LIVE_NODE_PARAMETERS, NodeConfig

YAML = Path(__file__).resolve().parents[1] / "config" / "mirage.yaml"
DERIVED = {"latent_channels", "device"}


def test_defaults_are_valid_and_every_field_is_described() -> None:
    NodeConfig()
    for f in dataclasses.fields(NodeConfig):
        assert f.metadata.get("description"), f.name
    for f in dataclasses.fields(MemoryConfig):
        assert f.metadata.get("description"), f.name


@pytest.mark.parametrize(
    ("field", "value", "hint"),
    [
        ("queue_size", 0, "queue_size"),
        ("depth_slop_s", -1.0, "depth_slop_s"),
        ("fixed_frame", "", "fixed_frame"),
        ("camera_namespaces", (), "camera"),
        ("camera_namespaces", ("a", "a"), "duplicates"),
        ("sensor_qos", "fast", "sensor_qos"),
        ("clock_jump_policy", "ignore", "clock_jump_policy"),
    ],
)
def test_invalid_settings_raise_a_clear_config_error(field: str, value: object, hint: str) -> None:
    with pytest.raises(ConfigError, match=hint):
        NodeConfig(**{field: value})  # type: ignore[arg-type]


def test_live_parameters_are_real_fields() -> None:
    names = {f.name for f in dataclasses.fields(NodeConfig)}
    assert names >= LIVE_NODE_PARAMETERS


def test_yaml_names_every_parameter_with_its_default() -> None:
    params = yaml.safe_load(YAML.read_text())["mirage"]["ros__parameters"]
    memory = params.pop("memory")
    node_defaults = dataclasses.asdict(NodeConfig())
    node_defaults["camera_namespaces"] = list(node_defaults["camera_namespaces"])
    assert params == node_defaults
    mem_defaults = {k: v for k, v in MemoryConfig().to_dict().items() if k not in DERIVED}
    assert memory == mem_defaults


def test_the_sensor_node_gets_the_topic_remaps_not_the_node_name_rules() -> None:
    from mirage_ros.node_config import sensor_node_remaps

    argv = ["mirage_node", "--ros-args", "-r", "__node:=front", "-r", "__ns:=/robot"]
    argv += ["-r", "camera/color/image_raw:=/cam/rgb", "-p", "device:=cpu"]
    argv += ["--remap", "front:tf:=/tf_robot", "-r", "other:tf:=/nope", "-r", "mirage:x:=/y"]
    argv += ["-r", "front:rostopic://a:=b", "--", "-r", "after:=the_ros_args"]
    assert sensor_node_remaps(argv, "front") == [
        "camera/color/image_raw:=/cam/rgb",
        "tf:=/tf_robot",
        "rostopic://a:=b",
    ]
    assert sensor_node_remaps(None, "mirage") == []
    assert sensor_node_remaps(["x", "--ros-args", "-r"], "mirage") == []  # no rule after -r
