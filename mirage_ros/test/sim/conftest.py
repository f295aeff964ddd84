"""Fixtures of the sim tests."""

from __future__ import annotations

import pytest
from mirage_ros.sim import SyntheticSequence
from sim_worlds import small_config


@pytest.fixture(scope="session")
def apartment_seq() -> SyntheticSequence:
    return SyntheticSequence(small_config(seed=3, frames=900))
