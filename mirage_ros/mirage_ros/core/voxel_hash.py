"""Voxel keys and the sorted two-level key -> slot index of the latent memory.

Keys: a voxel's level and integer coordinates ``floor(p / size)`` (``size`` the level's voxel
edge) packed into one non-negative int64: the level in bits 60-61, then 20 bits per axis offset
by 2**19, so +-2**19 voxels per axis (+-26 km at 5 cm, +-13 km at 2.5 cm). Level 0 is the
memory's ``voxel_size_m``, level 1 its finer ``near_voxel_size_m`` (cells observed near the
camera); the two never share a key. Files before format version 3 packed level-0 coordinates
in 21 bits per axis (:func:`repack_legacy_keys`).

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
    "LEVEL_SHIFT",
    "SortedKeyIndex",
    "key_levels",
    "pack_keys",
    "repack_legacy_keys",
    "unpack_keys",
    "voxel_coords",
]

KEY_BITS = 20
KEY_OFFSET = 1 << (KEY_BITS - 1)
#: the level sits above the three axes
LEVEL_SHIFT = 3 * KEY_BITS
_MASK = (1 << KEY_BITS) - 1
_LEGACY_BITS = 21  # format versions 1-2: level 0 only, 21 bits per axis
_LEGACY_OFFSET = 1 << (_LEGACY_BITS - 1)


def voxel_coords(points_m: Tensor, voxel_size_m: float | Tensor) -> tuple[Tensor, Tensor]:
    """Integer voxel coordinates of points (N, 3) -> (ijk (N, 3) int64, in_range (N,) bool).

    ``voxel_size_m``: one edge for all points, or one per point ((N, 1) float32)."""
    ijk = torch.floor(points_m / voxel_size_m).to(torch.int64)
    in_range = ((ijk >= -KEY_OFFSET) & (ijk < KEY_OFFSET)).all(dim=-1)
    return ijk, in_range


def pack_keys(ijk: Tensor, level: Tensor | int = 0) -> Tensor:
    """Pack voxel coordinates (N, 3) int64 (each in [-2**19, 2**19)) and their level (0 or 1;
    an int or (N,) int64) into keys (N,) int64 >= 0."""
    o = ijk + KEY_OFFSET
    key = (o[:, 0] << (2 * KEY_BITS)) | (o[:, 1] << KEY_BITS) | o[:, 2]
    if isinstance(level, Tensor):
        return key | (level << LEVEL_SHIFT)
    return key | (int(level) << LEVEL_SHIFT) if level else key


def unpack_keys(keys: Tensor) -> Tensor:
    """Inverse of :func:`pack_keys` for the coordinates: keys (N,) -> ijk (N, 3) int64."""
    i = (keys >> (2 * KEY_BITS)) & _MASK
    j = (keys >> KEY_BITS) & _MASK
    k = keys & _MASK
    return torch.stack([i, j, k], dim=-1) - KEY_OFFSET


def key_levels(keys: Tensor) -> Tensor:
    """The level of each key (N,) int64 (a freed slot's key -1 gives -1)."""
    return keys >> LEVEL_SHIFT


def repack_legacy_keys(keys: Tensor) -> Tensor | None:
    """Keys of format versions 1-2 (21 bits per axis, level 0) in today's layout, order kept;
    None when a coordinate lies outside today's +-2**19 range."""
    mask = (1 << _LEGACY_BITS) - 1
    ijk = (
        torch.stack(
            [(keys >> (2 * _LEGACY_BITS)) & mask, (keys >> _LEGACY_BITS) & mask, keys & mask],
            dim=-1,
        )
        - _LEGACY_OFFSET
    )
    if not bool(((ijk >= -KEY_OFFSET) & (ijk < KEY_OFFSET)).all()):
        return None
    return pack_keys(ijk)


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
