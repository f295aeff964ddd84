"""Settings of the ROS node that are not memory settings (those live in core.MemoryConfig).

Ring 2: no rclpy here. ``params.py`` turns these fields (and MemoryConfig's) into ROS parameters,
so every parameter is declared once, from the field's type, default and metadata.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mirage_ros.core.errors import ConfigError

__all__ = ["LIVE_NODE_PARAMETERS", "NodeConfig", "sensor_node_remaps"]


def _p(default: Any, description: str, range_: tuple[float, float] | None = None) -> Any:
    meta: dict[str, Any] = {"description": description}
    if range_ is not None:
        meta["range"] = range_
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NodeConfig:
    """Node settings. Units are in the names; every field becomes a ROS parameter."""

    fixed_frame: str = _p("map", "Frame the memory is kept in (REP-105 map or odom).")
    camera_namespaces: tuple[str, ...] = _p(
        ("camera",),
        "Camera namespaces; each subscribes <ns>/color/image_raw, <ns>/color/camera_info and "
        "<ns>/depth/image_raw.",
    )
    device: str = _p("auto", "Torch device for the memory and codec: auto, cpu, cuda, cuda:N.")
    weights_path: str = _p("", "Codec weights (.safetensors); empty = the shipped default.")
    depth_slop_s: float = _p(
        0.02, "Largest stamp difference for pairing a depth image with a color image.", (0.0, 1.0)
    )
    queue_size: int = _p(
        8,
        "Frames waiting for integration; the oldest is dropped (and counted) when full.",
        (1, 1000),
    )
    max_rate_hz: float = _p(
        0.0,
        "Integrate at most this many frames per second per camera, by message stamps "
        "(0 = every frame).",
        (0.0, 1000.0),
    )
    transform_wait_s: float = _p(
        0.5,
        "How long a frame may wait for its camera info, depth and transform before it is dropped.",
        (0.0, 60.0),
    )
    max_poses_per_request: int = _p(
        64, "Most poses one predict_views request or trajectory may hold.", (1, 100000)
    )
    max_image_side_px: int = _p(
        4096, "Largest width or height of a requested virtual camera.", (16, 16384)
    )
    predict_batch: int = _p(8, "Views rendered and decoded together.", (1, 256))
    max_concurrent_requests: int = _p(
        8,
        "Requests (services, query_pose, trajectory goals) served at once; more get a busy "
        "answer at once. The executor has this many threads plus 4 for sensors and timers.",
        (1, 256),
    )
    torch_threads: int = _p(
        0,
        "CPU threads torch may use for the memory and codec (0 = one per two cores, at least "
        "one, so callbacks and the worker never starve each other).",
        (0, 1024),
    )
    cuda_graphs: bool = _p(
        True,
        "On CUDA, replay the codec's decode from CUDA graphs, one per view size (the same "
        "bits; at 640x480 on an H100 about 2 instead of 9-23 ms). Ignored on CPU.",
    )
    gil_switch_interval_ms: float = _p(
        0.5,
        "Python's thread switch interval in the node process (sys.setswitchinterval). Every "
        "torch call lets go of the GIL; at Python's default of 5 ms the worker then waits behind "
        "busy callback threads for up to that long per call.",
        (0.01, 100.0),
    )
    request_timeout_s: float = _p(
        30.0, "How long a service waits for the worker before failing the request.", (0.1, 3600.0)
    )
    memory_dir: str = _p(
        "~/.ros/mirage", "Directory that save_memory/load_memory paths are confined to."
    )
    allow_any_path: bool = _p(False, "Allow save/load paths outside memory_dir.")
    load_path: str = _p("", "Memory file loaded at start (empty = start empty).")
    autosave_path: str = _p("", "Memory file saved on shutdown and periodically (empty = off).")
    autosave_period_min: float = _p(
        5.0, "Minutes between autosaves (0 = only on shutdown).", (0.0, 10000.0)
    )
    status_rate_hz: float = _p(1.0, "Rate of ~/status and /diagnostics.", (0.01, 100.0))
    cloud_period_s: float = _p(
        5.0, "Seconds between ~/memory_cloud updates (0 = off).", (0.0, 3600.0)
    )
    cloud_max_points: int = _p(200000, "Most points in ~/memory_cloud.", (1, 10000000))
    sensor_qos: str = _p(
        "sensor_data", "QoS of camera subscriptions: sensor_data (best effort) or reliable."
    )
    clock_jump_policy: str = _p(
        "reset_tf",
        "When message time jumps back (a looped bag): reset_tf keeps the memory and "
        "clears transform history; reset_memory clears both.",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rng = f.metadata.get("range")
            value = getattr(self, f.name)
            if rng is not None and not (rng[0] <= value <= rng[1]):
                raise ConfigError(f"{f.name}={value!r} is outside [{rng[0]}, {rng[1]}]")
        if not self.fixed_frame:
            raise ConfigError("fixed_frame must not be empty")
        if not self.camera_namespaces:
            raise ConfigError("camera_namespaces must name at least one camera")
        if len(set(self.camera_namespaces)) != len(self.camera_namespaces):
            raise ConfigError(f"camera_namespaces has duplicates: {list(self.camera_namespaces)}")
        if self.sensor_qos not in ("sensor_data", "reliable"):
            raise ConfigError(
                f"sensor_qos must be sensor_data or reliable, not {self.sensor_qos!r}"
            )
        if self.clock_jump_policy not in ("reset_tf", "reset_memory"):
            raise ConfigError(
                "clock_jump_policy must be reset_tf or reset_memory, "
                f"not {self.clock_jump_policy!r}"
            )


#: Node parameters that may change while the node runs; all others are read-only.
LIVE_NODE_PARAMETERS = frozenset(
    {"max_rate_hz", "max_poses_per_request", "cloud_period_s", "depth_slop_s", "transform_wait_s"}
)


_RULE = re.compile(r"^(?:(?P<node>[^:/]+):(?!//))?(?P<match>[^:]*(?:://[^:]*)?):=(?P<repl>.*)$")
_NAME_RULES = frozenset({"__node", "__name", "__ns"})


def sensor_node_remaps(ros_args: Sequence[str] | None, node_name: str) -> list[str]:
    """The remap rules of a process's ROS arguments that apply to the node ``node_name``'s
    topics, for the companion node that holds its sensor subscriptions.

    The companion does not read the process's arguments itself (a global ``__node:=`` would give
    it the same name): it gets the topic rules, rules prefixed ``node_name:`` without their
    prefix, and neither the node-name and namespace rules nor those meant for other nodes.
    ``ros_args``: the command line as ``rclpy.init`` got it (``--ros-args -r a:=b ... --``).
    """
    rules: list[str] = []
    in_ros = False
    tokens = list(ros_args or [])
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--ros-args":
            in_ros = True
        elif tok == "--":
            in_ros = False
        elif in_ros and tok in ("-r", "--remap") and i + 1 < len(tokens):
            i += 1
            m = _RULE.match(tokens[i])
            mine = m is not None and m["node"] in (None, node_name)
            if m is not None and mine and m["match"] not in _NAME_RULES:
                rules.append(f"{m['match']}:={m['repl']}")
        i += 1
    return rules
