"""Child processes of the ROS tools (demo, soak, tests): stopping a node the way a robot would.

Ring 2: no rclpy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

__all__ = ["name_this_thread", "stop_process", "thread_cpu_s"]

_PR_SET_NAME = 15


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


def name_this_thread(name: str) -> None:
    """Give the calling thread an OS-level name (Linux: up to 15 bytes; elsewhere nothing), so
    ``top -H``, ``/proc/<pid>/task/*/comm`` and :func:`thread_cpu_s` tell threads apart."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass  # a name is a convenience


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of each thread of process ``pid``, summed by thread
    name (Linux /proc; {} elsewhere or when the process is gone)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out
