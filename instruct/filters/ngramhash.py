"""Decontamination's first look at a batch of threads: the 64-bit polynomial hash (``polyhash``) of every word
n-gram of many normalised texts at once, and a set of evaluation n-gram hashes to test them against.

The texts are normalised words joined by single spaces (``normalize.joined``); all their n-grams are hashed in
one pass over the batch's bytes, and Python builds an n-gram string only where its hash is in the set. A hash
only proposes: the caller confirms the n-gram string itself against the exact index, so a collision never
removes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
import numpy as np

from instruct.filters.polyhash import Powers, SpanHashes, word_bounds

_TABLE_SLOTS = 16  # slots of the presence table per hash: about 1 in 16 absent n-grams gets past it


@dataclass(slots=True)
class NgramSpans:
    """Every n-gram of a batch of threads.

    Args:
        data: the texts' bytes joined by single spaces (empty texts left out), a space at the end.
        hashes: each n-gram's ``polyhash.polynomial``, thread by thread, in order (uint64).
        threads: the thread each n-gram is in (its index in the batch).
        begins, ends: its bytes in ``data`` (without the space after it).
    """

    data: bytes
    hashes: np.ndarray
    threads: np.ndarray
    begins: np.ndarray
    ends: np.ndarray

    def text(self, at: int) -> str:
        """The n-gram ``at`` itself."""
        return self.data[self.begins[at]:self.ends[at]].decode()


def sizes(threads: list[list[bytes]]) -> np.ndarray:
    """Each thread's bytes in ``NgramSpans.data`` at most (a space after each text)."""
    lengths = np.fromiter(map(len, chain.from_iterable(threads)), dtype=np.int64) + 1
    ends = np.cumsum(np.fromiter(map(len, threads), dtype=np.int64, count=len(threads)))
    return np.diff(np.concatenate(([0], np.cumsum(lengths)))[ends], prepend=0)


def ngram_spans(threads: list[list[bytes]], n: int, powers: Powers) -> NgramSpans:
    """Every run of ``n`` words of each thread, given by its texts: across its texts (one without words adds
    none), never across threads (a thread of fewer words has none). ``powers``: the tables to use and grow, as
    long as the threads' bytes."""
    texts = list(chain.from_iterable(threads))
    data = b" ".join(filter(None, texts)) + b" "  # every word, and so every text, ends in a space
    buffer = np.frombuffer(data, dtype=np.uint8)
    word_starts, word_ends = word_bounds(buffer)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    has_words = lengths > 0
    text_words = np.zeros(len(texts) + 1, dtype=np.int64)  # text_words[k + 1]: words of text k
    text_words[1:][has_words] = np.diff(np.searchsorted(word_ends, (np.cumsum(lengths + has_words) - 1)[has_words]),
                                        prepend=-1)
    thread_ends = np.cumsum(np.fromiter(map(len, threads), dtype=np.int64, count=len(threads)))
    words = np.diff(np.cumsum(text_words)[thread_ends], prepend=0)
    grams = np.maximum(words - (n - 1), 0)
    total = int(grams.sum())
    if not total:
        empty = np.empty(0, dtype=np.int64)
        return NgramSpans(data, empty.astype(np.uint64), empty, empty, empty)
    first_word = np.cumsum(words) - words  # of each thread
    starts = np.cumsum(grams) - grams  # each thread's first n-gram
    first = np.arange(total) - np.repeat(starts - first_word, grams)  # each n-gram's first word
    begins, ends = word_starts[first], word_ends[first + (n - 1)]
    hashes = SpanHashes(buffer, powers).of(begins, ends)
    return NgramSpans(data, hashes, np.repeat(np.arange(len(threads)), grams), begins, ends)


class HashSet:
    """A set of uint64 hashes, sorted, with a presence table over their top bits in front of the search (most
    n-grams of a training thread are in no evaluation set, and one table look-up turns most of them away).

    Args:
        hashes: the members (repeats allowed).
    """

    def __init__(self, hashes: np.ndarray):
        self.keys = np.unique(np.asarray(hashes, dtype=np.uint64))
        bits = max(int(len(self.keys) * _TABLE_SLOTS - 1).bit_length(), 1)
        self.shift = np.uint64(64 - bits)
        self.table = np.zeros(1 << bits, dtype=bool)
        self.table[self.keys >> self.shift] = True

    def __len__(self) -> int:
        return len(self.keys)

    def members(self, hashes: np.ndarray) -> np.ndarray:
        """The positions in ``hashes`` of those in the set, ascending."""
        maybe = np.flatnonzero(self.table[hashes >> self.shift])
        if not len(maybe):
            return maybe
        candidates = hashes[maybe]
        at = np.searchsorted(self.keys, candidates).clip(max=len(self.keys) - 1)
        return maybe[self.keys[at] == candidates]
