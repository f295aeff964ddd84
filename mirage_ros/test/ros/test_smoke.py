"""Foundation smoke test: a real rclpy node in a subprocess answers one of our services over DDS."""

from __future__ import annotations

from pathlib import Path

import pytest
from rosutil import Client, start_node, stop_node

pytestmark = pytest.mark.ros


def test_node_process_answers_reset_over_dds(tmp_path: Path) -> None:
    from std_srvs.srv import Trigger

    proc = start_node(tmp_path)
    client = Client("mirage_smoke_client")
    client.attach(proc)
    try:
        cli = client.client(Trigger, "reset", timeout_s=60)
        res = client.call(cli, Trigger.Request(), timeout_s=30)
        assert res.success
        assert res.message == "memory cleared"
    finally:
        client.close()
        assert stop_node(proc) == 0, (tmp_path / "node.log").read_text()
