"""The 64-bit polynomial hash both filters give spans of normalised text (dedup: shingles and whole posts;
decontamination: word n-grams), computed for every span of a batch at once.

``polynomial(data)`` is 1, then ``value * BASE + byte`` for every byte, modulo 2^64. The hash of any byte span
of a buffer follows from one prefix sum over the buffer: with C[k] the sum of byte_j * BASE^-j for j < k, the
span [s, e) hashes to BASE^(e-s) + BASE^(e-1) * (C[e] - C[s]), all modulo 2^64 (the base is odd, so it has an
inverse). So no Python code runs per word, shingle or n-gram.
"""

from __future__ import annotations

import numpy as np

_MASK64 = 2 ** 64 - 1
_BASE = 0x9E3779B97F4A7C15 | 5  # odd (invertible modulo 2^64), 5 modulo 8 (long period)
_INVERSE = pow(_BASE, -1, 2 ** 64)
_SPACE = 0x20  # what separates the words of a normalised text (normalize.joined)


def polynomial(data: bytes) -> int:
    """The hash of ``data``: what ``SpanHashes`` gives for a span holding these bytes."""
    value = 1
    for byte in data:
        value = (value * _BASE + byte) & _MASK64
    return value


def _powers(base: int, n: int) -> np.ndarray:
    """base^0 … base^(n-1) modulo 2^64, by doubling (whole-array products; an accumulate runs element by
    element)."""
    powers = np.ones(max(n, 1), dtype=np.uint64)
    step, factor = 1, base
    while step < n:
        powers[step:2 * step] = powers[:min(step, n - step)] * np.uint64(factor)
        step, factor = 2 * step, factor * factor & _MASK64
    return powers[:n]


class Powers:
    """The base's powers and its inverse's, modulo 2^64, as long as the largest buffer so far needs. A
    cluster's pass holds one (a few MiB), so they are made once per cluster, not per batch, and not kept for
    the rest of the run (whose peak they would raise)."""

    def __init__(self):
        self.power = self.inverse = np.ones(0, dtype=np.uint64)

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.power) < n:
            self.power, self.inverse = _powers(_BASE, 2 * n), _powers(_INVERSE, 2 * n)
        return self.power, self.inverse


class SpanHashes:
    """The ``polynomial`` of any byte spans of one buffer.

    Args:
        buffer: the bytes (uint8).
        powers: the tables to use and grow.
    """

    def __init__(self, buffer: np.ndarray, powers: Powers):
        self.power, inverse = powers.upto(len(buffer))
        self.prefix = np.zeros(len(buffer) + 1, dtype=np.uint64)
        np.cumsum(buffer * inverse[:len(buffer)], out=self.prefix[1:])

    def of(self, begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The hash of each span [begin, end)."""
        return self.power[ends - begins] + self.power[ends - 1] * (self.prefix[ends] - self.prefix[begins])


def word_bounds(buffer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each word of a buffer of words begins and ends (its space), for a buffer in which every word,
    the last one too, is followed by one space."""
    ends = np.flatnonzero(buffer == _SPACE)
    begins = np.empty_like(ends)
    begins[:1] = 0
    begins[1:] = ends[:-1] + 1
    return begins, ends
