"""Every random choice is drawn from a SeedSequence named by (seed, cluster, purpose, index).

So a cluster's rows never depend on which other clusters exist, on how it is sharded, or on how many
workers run: randomness is a function of *what* is being decided, not of *when*.
"""

from __future__ import annotations

import hashlib

import numpy as np

SELECT, CHUNK, DOLLY = 1, 2, 3


def name_entropy(name: str) -> int:
    """A stable 64-bit integer for a name (Python's hash() changes with PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def rng_for(seed: int, cluster: str, purpose: int, *index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, name_entropy(cluster), purpose, *index]))


def unit_interval(seed: int, name: str) -> float:
    """A stable uniform number in [0, 1) for a name, e.g. to put a thread on one side of the split."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64
