"""Voxel keys and the sorted two-level key -> slot index of the latent memory.

Keys: integer voxel coordinates ``floor(p / voxel_size_m)`` packed into one non-negative int64
(21 bits per axis, offset by 2**20, so +-2**20 voxels per axis: +-52 km at 5 cm).

Index: a large sorted ``main`` run plus a small sorted ``delta`` run of recently appended
slots. A frame's new voxels (already sorted by ``torch.unique``) are merged into the delta only,
so the cost per frame is ``O(new log delta + queries log N)``; the delta is folded into the main
run by the owner (a full rebuild) only once it outgrows a fraction of the main run, which keeps
the amortised cost per new voxel ``O(log N)`` and never re-sorts the whole memory per frame.
Deleted slots are not removed from the index: a lookup verifies ``slot_keys[slot] == key``
(freed slots hold key -1), and slots are never reused between rebuilds.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "KEY_BITS",
    "KEY_OFFSET",
    "SortedKeyIndex",
    "pack_keys",
    "unpack_keys",
    "voxel_coords",
]

KEY_BITS = 21
KEY_OFFSET = 1 << (KEY_BITS - 1)
_MASK = (1 << KEY_BITS) - 1


def voxel_coords(points_m: Tensor, voxel_size_m: float) -> tuple[Tensor, Tensor]:
    """Integer voxel coordinates of points (N, 3) -> (ijk (N, 3) int64, in_range (N,) bool)."""
    ijk = torch.floor(points_m / voxel_size_m).to(torch.int64)
    in_range = ((ijk >= -KEY_OFFSET) & (ijk < KEY_OFFSET)).all(dim=-1)
    return ijk, in_range


def pack_keys(ijk: Tensor) -> Tensor:
    """Pack voxel coordinates (N, 3) int64 (each in [-2**20, 2**20)) into keys (N,) int64 >= 0."""
    o = ijk + KEY_OFFSET
    return (o[:, 0] << (2 * KEY_BITS)) | (o[:, 1] << KEY_BITS) | o[:, 2]


def unpack_keys(keys: Tensor) -> Tensor:
    """Inverse of :func:`pack_keys`: keys (N,) -> ijk (N, 3) int64."""
    i = (keys >> (2 * KEY_BITS)) & _MASK
    j = (keys >> KEY_BITS) & _MASK
    k = keys & _MASK
    return torch.stack([i, j, k], dim=-1) - KEY_OFFSET


def _lookup_run(keys: Tensor, slots: Tensor, query: Tensor, slot_keys: Tensor) -> Tensor:
    """Slots of ``query`` in one sorted run (-1 where absent or the slot was freed)."""
    if keys.numel() == 0:
        return torch.full_like(query, -1)
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    cand = slots[pos]
    hit = (keys[pos] == query) & (slot_keys[cand] == query)
    return torch.where(hit, cand, torch.full_like(cand, -1))


class SortedKeyIndex:
    """Key -> slot lookup over a sorted main run and a sorted delta run (see module doc)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        empty = torch.empty(0, dtype=torch.int64, device=device)
        self.main_keys: Tensor = empty
        self.main_slots: Tensor = empty
        self.delta_keys: Tensor = empty
        self.delta_slots: Tensor = empty

    @property
    def nbytes(self) -> int:
        """Exact bytes of the index tensors."""
        return sum(
            t.numel() * t.element_size()
            for t in (self.main_keys, self.main_slots, self.delta_keys, self.delta_slots)
        )

    @property
    def num_entries(self) -> int:
        """Entries held (live and stale)."""
        return int(self.main_keys.numel() + self.delta_keys.numel())

    @property
    def delta_size(self) -> int:
        """Entries in the delta run."""
        return int(self.delta_keys.numel())

    def lookup(self, query: Tensor, slot_keys: Tensor) -> Tensor:
        """Slots of the query keys (Q,) int64, -1 where absent. ``slot_keys``: key per slot."""
        found = _lookup_run(self.main_keys, self.main_slots, query, slot_keys)
        if self.delta_keys.numel() > 0:
            miss = found < 0
            if bool(miss.any()):
                d = _lookup_run(self.delta_keys, self.delta_slots, query, slot_keys)
                found = torch.where(miss, d, found)
        return found

    def add(self, keys: Tensor, slots: Tensor) -> None:
        """Add new (key, slot) pairs (keys absent from the index) to the delta run."""
        if keys.numel() == 0:
            return
        all_keys = torch.cat([self.delta_keys, keys])
        all_slots = torch.cat([self.delta_slots, slots])
        order = torch.argsort(all_keys, stable=True)
        self.delta_keys = all_keys[order]
        self.delta_slots = all_slots[order]

    def rebuild(self, slot_keys: Tensor) -> None:
        """Rebuild from scratch: ``slot_keys`` (S,) is the key of slots 0..S-1 (-1 = free)."""
        live = torch.nonzero(slot_keys >= 0).squeeze(1)
        keys = slot_keys[live]
        order = torch.argsort(keys, stable=True)
        self.main_keys = keys[order].contiguous()
        self.main_slots = live[order].contiguous()
        empty = torch.empty(0, dtype=torch.int64, device=self.device)
        self.delta_keys = empty
        self.delta_slots = empty
