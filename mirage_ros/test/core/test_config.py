"""MemoryConfig validation, dict round trip, parameter descriptions; resolve_device."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mirage_ros.core.config import MemoryConfig, resolve_device
from mirage_ros.core.errors import ConfigError


def test_defaults_are_valid_and_documented() -> None:
    cfg = MemoryConfig()
    assert cfg.voxel_size_m == 0.05
    described = MemoryConfig.describe()
    for f in dataclasses.fields(MemoryConfig):
        assert described[f.name]["description"], f"{f.name} lacks a description"


@pytest.mark.parametrize(
    "bad",
    [
        {"voxel_size_m": 0.0},
        {"voxel_size_m": float("nan")},
        {"latent_channels": 0},
        {"latent_channels": 2.5},
        {"max_memory_mb": -1.0},
        {"min_depth_m": 5.0, "max_depth_m": 4.0},
        {"eviction": "random"},
        {"latent_dtype": "bfloat8"},
        {"carve_free_space": "yes"},
        {"splat_radius_px": 99},
        {"device": ""},
        {"max_weight": True},
    ],
)
def test_invalid_values_raise_config_error(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MemoryConfig(**bad)  # type: ignore[arg-type]


def test_dict_round_trip_is_identity() -> None:
    cfg = MemoryConfig(voxel_size_m=0.1, eviction="farthest", latent_dtype="float32", device="cpu")
    assert MemoryConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        MemoryConfig.from_dict({"voxel_size": 0.1})


def test_int_given_for_float_field_is_accepted_as_float() -> None:
    assert isinstance(MemoryConfig(max_memory_mb=64).max_memory_mb, float)


def test_resolve_device_auto_and_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_refuses_missing_cuda() -> None:
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_device("cuda")


def test_resolve_device_refuses_unknown() -> None:
    with pytest.raises(ConfigError):
        resolve_device("tpu")
