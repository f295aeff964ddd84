"""The `mirage` CLI unwinds on SIGTERM like on Ctrl-C, so commands stop the nodes they started."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import types

import pytest

from mirage_ros import cli


def _fake_command(monkeypatch: pytest.MonkeyPatch, sig: int, cleaned: list[str]) -> None:
    module = types.ModuleType("mirage_fake_command")

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        del parser

    def run(args: argparse.Namespace) -> int:
        del args
        try:
            os.kill(os.getpid(), sig)
            time.sleep(10.0)  # interrupted long before this ends
            return 0
        finally:
            cleaned.append("child node stopped")

    module.add_arguments = add_arguments  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "fake", (module.__name__, "a command that gets a signal"))


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_runs_the_command_cleanup_and_exits_with_its_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sig: int, status: int
) -> None:
    cleaned: list[str] = []
    _fake_command(monkeypatch, sig, cleaned)
    before = signal.getsignal(signal.SIGTERM)
    # a shell starts background jobs with SIGINT ignored, and Python then leaves it ignored (as
    # the CLI does, by POSIX convention): give this test the handler of an interactive session
    int_before = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    try:
        assert cli.main(["fake"]) == status
    finally:
        signal.signal(signal.SIGINT, int_before)
    assert time.monotonic() - t0 < 5.0
    assert cleaned == ["child node stopped"]
    assert "mirage fake: " in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored
