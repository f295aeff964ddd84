"""ROS parameters generated from the config dataclasses (declared once, with descriptions).

Node settings (:class:`NodeConfig`) are top-level parameters; memory settings
(:class:`MemoryConfig`) are ``memory.<field>``. Types, defaults, descriptions and ranges come from
the dataclass fields, so nothing is written twice. Invalid values raise ConfigError, which stops
the node with a clear message.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node

from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.errors import ConfigError
from mirage_ros.node_config import LIVE_NODE_PARAMETERS, NodeConfig

__all__ = ["MEMORY_PREFIX", "declare_parameters", "read_configs", "validate_live_change"]

MEMORY_PREFIX = "memory."
#: MemoryConfig fields the node sets itself (from the codec and the `device` parameter).
_DERIVED_MEMORY_FIELDS = frozenset({"latent_channels", "device"})


def _field_type(cls: type, f: dataclasses.Field[Any]) -> Any:
    return typing.get_type_hints(cls)[f.name]


def _descriptor(f: dataclasses.Field[Any], ftype: Any, read_only: bool) -> ParameterDescriptor:
    desc = ParameterDescriptor(
        description=str(f.metadata.get("description", "")), read_only=read_only
    )
    rng = f.metadata.get("range")
    if rng is not None and ftype is float:
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)
        ]
    elif rng is not None and ftype is int:
        desc.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]), step=0)]
    return desc


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        raise ConfigError(f"config field {f.name} has no default")
    return list(value) if isinstance(value, tuple) else value


def _fields() -> list[tuple[str, type, dataclasses.Field[Any], bool]]:
    out = []
    for f in dataclasses.fields(NodeConfig):
        out.append((f.name, NodeConfig, f, f.name not in LIVE_NODE_PARAMETERS))
    for f in dataclasses.fields(MemoryConfig):
        if f.name not in _DERIVED_MEMORY_FIELDS:
            out.append((MEMORY_PREFIX + f.name, MemoryConfig, f, True))
    return out


def declare_parameters(node: Node) -> None:
    """Declare every node and memory parameter with its default, description and range."""
    for name, cls, f, read_only in _fields():
        ftype = _field_type(cls, f)
        node.declare_parameter(name, _default(f), _descriptor(f, ftype, read_only))


def _coerce(value: Any, ftype: Any, name: str) -> Any:
    origin = typing.get_origin(ftype)
    if origin is tuple:
        return tuple(str(v) for v in (value or []))
    if ftype is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if ftype in (int, float, str, bool) and not isinstance(value, ftype):
        raise ConfigError(f"parameter {name} must be {ftype.__name__}, got {value!r}")
    return value


def read_configs(node: Node) -> tuple[NodeConfig, dict[str, Any]]:
    """Read the declared parameters: the NodeConfig and the MemoryConfig keyword arguments."""
    node_kwargs: dict[str, Any] = {}
    memory_kwargs: dict[str, Any] = {}
    for name, cls, f, _ in _fields():
        value = _coerce(node.get_parameter(name).value, _field_type(cls, f), name)
        if cls is NodeConfig:
            node_kwargs[f.name] = value
        else:
            memory_kwargs[f.name] = value
    return NodeConfig(**node_kwargs), memory_kwargs


def validate_live_change(
    config: NodeConfig, params: list[Any]
) -> tuple[SetParametersResult, NodeConfig]:
    """Check a live parameter change; returns the result and the config to use if accepted."""
    changes: dict[str, Any] = {}
    types = typing.get_type_hints(NodeConfig)
    try:
        for p in params:
            if p.name in LIVE_NODE_PARAMETERS:
                changes[p.name] = _coerce(p.value, types[p.name], p.name)
        new_config = dataclasses.replace(config, **changes)
    except (ConfigError, TypeError) as exc:
        return SetParametersResult(successful=False, reason=str(exc)), config
    return SetParametersResult(successful=True), new_config
