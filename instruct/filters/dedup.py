"""Near-duplicate removal within a cluster: MinHash LSH over word shingles (datasketch), the first in file
order kept.

A thread is compared by its anchor post (the post the post-writing tasks write), normalised like every filter
(``normalize.words``). Its shingles are runs of ``shingle`` words (a shorter post is one shingle). datasketch's
``MinHash`` gives each post a signature; ``MinHashLSH`` chooses the bands for the Jaccard threshold (see
``DedupParams.bands``).

datasketch's ``MinHashLSH`` keeps a Python dict and a set per band bucket: ~1.4 KB a post with 32
permutations, over 300 MiB for a 250 k-thread cluster. So the index here is flat numpy: one 32-bit key per band
(the band's hash values folded with fixed odd multipliers; a chance collision only adds a candidate, which the
verification drops), a 64-bit key of the exact normalised text and the line number: 4 × bands + 12 bytes a
post, 48 with the default 9 bands. After one pass over the cluster, posts that share a band key are candidate pairs; a candidate
pair is kept only when the Jaccard similarity of the two shingle sets, computed exactly from the posts
re-read, reaches the threshold. Posts joined by such pairs form groups (connected components, as in
datatrove's MinHash dedup); each group keeps its first post in file order, and the others are removed as
``exact`` (the same normalised text occurs earlier) or ``near`` duplicates.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np

from instruct.errors import InstructError
from instruct.filters import normalize

# Fixed odd multipliers that fold a band's hash values into one 64-bit key (wrapping arithmetic).
_FOLD = np.random.default_rng(20260101).integers(1, 2 ** 63, size=256, dtype=np.uint64) | np.uint64(1)
_MINHASH_SEED = 1


def shingles(text: str, size: int) -> set[bytes]:
    return _shingles(normalize.words(text), size)


def _shingles(words: list[str], size: int) -> set[bytes]:
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class DedupParams:
    """Args:
        threshold: Jaccard similarity from which two posts are duplicates.
        num_perm: MinHash permutations (signature length).
        shingle: words per shingle.
    """

    threshold: float = 0.8
    num_perm: int = 64
    shingle: int = 3

    def bands(self) -> tuple[int, int]:
        """(bands, rows per band) that datasketch's MinHashLSH picks for the threshold. Its weights lean to
        recall (a false negative weighs 9 false positives): every candidate pair is verified exactly, so a false
        positive costs only a re-read. With 64 permutations: 9 bands of 7, a pair at Jaccard 0.8 is a candidate
        with probability 0.88, at 0.9 with 0.997, at 0.5 with 0.07."""
        from datasketch import MinHashLSH

        try:
            lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm, weights=(0.1, 0.9))
        except ValueError as exc:
            raise InstructError(f"dedup.threshold={self.threshold} with dedup.num_perm={self.num_perm}: {exc} "
                                "(lower the threshold or raise num_perm)") from None
        return lsh.b, lsh.r


class ClusterIndex:
    """The posts of one cluster in file order, as flat arrays of keys.

    Args:
        params: the dedup settings.
        capacity: the most posts that will be added (the cluster's selected lines).
    """

    def __init__(self, params: DedupParams, capacity: int):
        from datasketch import MinHash

        self.params = params
        self.b, self.r = params.bands()
        self._minhash = MinHash(num_perm=params.num_perm, seed=_MINHASH_SEED, hashfunc=zlib.crc32)
        self.lines = np.empty(capacity, dtype=np.int32)
        self.exact = np.empty(capacity, dtype=np.uint64)
        self.band_keys = np.empty((capacity, self.b), dtype=np.uint32)
        self.count = 0

    def add(self, line: int, text: str) -> None:
        words = normalize.words(text)
        grams = _shingles(words, self.params.shingle)
        if not grams:
            return
        minhash = self._minhash
        minhash.clear()
        minhash.update_batch(grams)
        values = minhash.hashvalues[: self.b * self.r].astype(np.uint64).reshape(self.b, self.r)
        at = self.count
        self.lines[at] = line
        self.band_keys[at] = (values * _FOLD[: self.r]).sum(axis=1, dtype=np.uint64) >> np.uint64(32)
        self.exact[at] = int.from_bytes(hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest(), "little")
        self.count += 1

    def duplicates(self, reread) -> dict[int, str]:
        """Line → ``exact`` | ``near`` for every post that repeats an earlier one.

        Args:
            reread: called with the sorted line numbers of the near candidates; returns line → post text.
        """
        n = self.count
        lines, exact = self.lines[:n], self.exact[:n]
        exact_pairs = _pairs(exact)
        exact_first = {later for later, _ in exact_pairs}
        # An exact repeat is removed with its first copy's group: only the first copies look for near ones.
        firsts = np.ones(n, dtype=bool)
        firsts[list(exact_first)] = False
        representatives = np.flatnonzero(firsts)
        near_pairs = set()
        for band in range(self.b):
            near_pairs.update((int(representatives[a]), int(representatives[b]))
                              for a, b in _pairs(self.band_keys[:n, band][representatives]))
        if near_pairs:
            wanted = sorted({int(lines[i]) for pair in near_pairs for i in pair})
            texts = reread(wanted)
            sets = {line: shingles(texts[line], self.params.shingle) for line in wanted}
            near_pairs = {(a, b) for a, b in near_pairs
                          if jaccard(sets[int(lines[a])], sets[int(lines[b])]) >= self.params.threshold}
        parent: dict[int, int] = {}  # union-find over the posts that are in a pair (the others are alone)

        def root(i: int) -> int:
            while parent.setdefault(i, i) != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in sorted(exact_pairs | near_pairs):
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)  # the earliest post is every group's root
        return {int(lines[i]): "exact" if i in exact_first else "near" for i in sorted(parent) if root(i) != i}


def _pairs(keys: np.ndarray) -> set[tuple[int, int]]:
    """(later, earlier) index pairs of equal keys: each post to its group's first and to the one before it."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1  # positions whose key equals the previous one
    if not len(same):
        return set()
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    group_first = order[starts[np.searchsorted(starts, same, side="right") - 1]]
    pairs = set(zip(order[same].tolist(), order[same - 1].tolist()))
    pairs.update(zip(order[same].tolist(), group_first.tolist()))
    return {(later, earlier) for later, earlier in pairs if later != earlier}
