"""The shipped Fast DDS profile: chosen only where the user chose nothing, and well formed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mirage_ros.dds import PROFILE_PATH, use_large_image_profile

NS = {"f": "http://www.eprosima.com"}


def test_profile_is_set_when_nothing_else_is_chosen() -> None:
    env: dict[str, str] = {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    assert use_large_image_profile(env) == str(PROFILE_PATH)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(PROFILE_PATH)
    assert use_large_image_profile({}) == str(PROFILE_PATH)  # Fast DDS is the default RMW


def test_a_users_own_profile_or_another_rmw_is_left_alone() -> None:
    for env in (
        {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"},
        {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"},
        {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},
        {"RMW_IMPLEMENTATION": "rmw_zenoh_cpp"},
    ):
        before = dict(env)
        assert use_large_image_profile(env) is None
        assert env == before


def test_profile_is_a_default_participant_with_a_large_shm_segment_and_builtins_kept() -> None:
    root = ET.parse(PROFILE_PATH).getroot()
    segment = root.find(".//f:transport_descriptor/f:segment_size", NS)
    assert segment is not None
    assert 4 * 2**20 <= int(segment.text or 0) <= 16 * 2**20  # holds frames, fits small /dev/shm
    participant = root.find("f:participant", NS)
    assert participant is not None and participant.get("is_default_profile") == "true"
    builtins = participant.find(".//f:useBuiltinTransports", NS)
    assert builtins is not None and builtins.text == "true"  # discovery range unchanged
