"""Path confinement of memory files, including symlink escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mirage_ros.core.errors import RequestError
from mirage_ros.view_requests import confine_path


def test_relative_paths_resolve_inside_the_memory_dir(tmp_path: Path) -> None:
    assert confine_path("a/b.safetensors", tmp_path, False) == (tmp_path / "a/b.safetensors")


def test_absolute_path_inside_the_memory_dir_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "m.safetensors"
    assert confine_path(str(p), tmp_path, False) == p.resolve()


@pytest.mark.parametrize("bad", ["../x.safetensors", "/etc/passwd", "a/../../x", "/tmp/../etc/x"])
def test_paths_escaping_the_memory_dir_are_refused(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "mem"
    root.mkdir()
    with pytest.raises(RequestError, match="outside memory_dir"):
        confine_path(bad, root, False)


def test_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "mem"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(RequestError, match="outside memory_dir"):
        confine_path("link/m.safetensors", root, False)


def test_allow_any_path_accepts_outside_paths(tmp_path: Path) -> None:
    assert confine_path("/var/tmp/m.safetensors", tmp_path, True) == Path("/var/tmp/m.safetensors")


@pytest.mark.parametrize("bad", ["", "a\x00b"])
def test_empty_or_nul_paths_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RequestError):
        confine_path(bad, tmp_path, False)
