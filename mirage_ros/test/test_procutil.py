"""Thread names and per-thread CPU of a process (what `mirage soak` reports for the node)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from mirage_ros.procutil import name_this_thread, thread_cpu_s


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_named_busy_thread_shows_its_cpu_under_its_name() -> None:
    done = threading.Event()

    def busy() -> None:
        name_this_thread("mirage_test_busy_thread")  # longer than 15 bytes: cut
        while time.thread_time() < 0.3:  # this thread's own CPU time
            sum(range(1000))
        done.set()
        time.sleep(0.5)  # still alive when read

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    assert done.wait(30)
    cpu = thread_cpu_s(os.getpid())
    t.join()
    assert cpu.get("mirage_test_bus", 0.0) >= 0.2
    assert thread_cpu_s(-1) == {}  # no such process
