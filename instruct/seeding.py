"""Every random choice is drawn from a SeedSequence named by (seed, cluster, purpose, index).

So a cluster's rows never depend on which other clusters exist, on how it is sharded, or on how many
workers run: randomness is a function of *what* is being decided, not of *when*.
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Sequence, TypeVar

import numpy as np

SELECT, CHUNK, DOLLY = 1, 2, 3
T = TypeVar("T")


def name_entropy(name: str) -> int:
    """A stable 64-bit integer for a name (Python's hash() changes with PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def rng_for(seed: int, cluster: str, purpose: int, *index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, name_entropy(cluster), purpose, *index]))


def unit_interval(seed: int, name: str) -> float:
    """A stable uniform number in [0, 1) for a name, e.g. to put a thread on one side of the split."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


class Draws:
    """The random choices of one chunk, as plain Python numbers drawn from its numpy Generator in blocks.

    A scalar call into numpy costs far more than a list pop, and a uniform taken from a block fetched with one
    ``random(n)`` call costs a list pop. The sequence is a
    function of the generator's seed alone, so it is as deterministic as the generator itself.

    Args:
        rng: the generator the uniforms come from.
    """

    __slots__ = ("_rng", "_block")
    _BLOCK = 512

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._block: list[float] = []

    def uniform(self) -> float:
        """A uniform float in [0, 1)."""
        if not self._block:
            self._block = self._rng.random(self._BLOCK).tolist()
        return self._block.pop()

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high]; low <= high. (The bias of scaling a 53-bit float is below 1e-13
        for any range this program asks for.)"""
        return low + int(self.uniform() * (high - low + 1))

    def pick(self, items: Sequence[T]) -> T:
        """One item of a non-empty sequence, uniformly."""
        return items[int(self.uniform() * len(items))]

    def order(self, n: int) -> Iterator[int]:
        """range(n) in a uniformly random order, drawn lazily (Fisher–Yates): taking the first k costs k draws,
        so a caller that stops early pays only for what it used."""
        moved: dict[int, int] = {}  # the swaps made so far; an index not in it holds itself
        for i in range(n):
            j = i + int(self.uniform() * (n - i))
            yield moved.get(j, j)
            moved[j] = moved.get(i, i)

    def shuffled(self, items: Sequence[T]) -> list[T]:
        """A uniformly shuffled copy of ``items``."""
        return [items[i] for i in self.order(len(items))]
