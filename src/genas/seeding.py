"""Explicit randomness: every stream is derived from the run seed and a purpose key.

Deriving per-epoch streams (instead of carrying one generator along) makes a resumed run draw
exactly what an uninterrupted run draws, whatever happened before the checkpoint.
"""
from __future__ import annotations

import numpy as np

# purpose keys, so streams for different jobs never collide
DATA, PATHS, VAL_ARCH, SEARCH, NOISE, INIT = range(1, 7)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (order matters)."""
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def derive_rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]))
