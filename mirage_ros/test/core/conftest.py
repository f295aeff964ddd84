"""Core tests run single-threaded: the test machine is small and shared."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
