"""Codec training: data through the memory, the loop, and the `mirage train` command.

``add_arguments`` / ``run`` are the `mirage train` command (see :mod:`.command`).
"""

from __future__ import annotations

from mirage_ros.train.command import TINY_CODEC, add_arguments, run

__all__ = ["TINY_CODEC", "add_arguments", "run"]
