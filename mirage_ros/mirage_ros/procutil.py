"""Child processes of the ROS tools (demo, soak, tests): stopping a node the way a robot would.

Ring 2: no rclpy.
"""

from __future__ import annotations

import signal
import subprocess

__all__ = ["stop_process"]


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout_s: float = 20.0
) -> int:
    """Send ``sig`` (SIGINT: the node saves its autosave and exits cleanly), wait up to
    ``timeout_s``, then kill. Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)
