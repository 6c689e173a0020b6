"""Near-duplicate removal within a cluster: MinHash LSH over word shingles (datasketch), the first in file
order kept.

A thread is compared by its anchor post (the post the post-writing tasks write), normalised like every filter
(``normalize.words``). Its shingles are runs of ``shingle`` words (a shorter post is one shingle). Each post's
signature is datasketch's ``MinHash(num_perm, seed=1, hashfunc=zlib.crc32)`` of its shingles (the tests check
equality on the real sample), computed here for a batch of posts in one numpy pass with datasketch's own
permutations, where datasketch's ``update_batch`` does small numpy operations for every post; datasketch's
``MinHashLSH`` chooses the bands for the Jaccard threshold (see ``DedupParams.hashing``).

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
import importlib.metadata
import os
import pickle
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from instruct.errors import InstructError
from instruct.filters import normalize

# Fixed odd multipliers that fold a band's hash values into one 64-bit key (wrapping arithmetic).
_FOLD = np.random.default_rng(20260101).integers(1, 2 ** 63, size=256, dtype=np.uint64) | np.uint64(1)
_MINHASH_SEED = 1
_BATCH_HASHES = 16_384  # shingle hashes per numpy pass: 16 k x 63 permutations x 4 bytes = 4 MiB
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shingles(text: str, size: int) -> set[bytes]:
    return _shingles(normalize.words(text), size)


def _shingles(words: list[str], size: int) -> set[bytes]:
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True)
class Hashing:
    """datasketch's parameters for the settings, obtained once (``DedupParams.hashing``).

    Args:
        bands: LSH bands that datasketch's MinHashLSH picks for the threshold.
        rows: hash values per band.
        a: the multipliers of datasketch's MinHash permutations (scheme ``affine32``), uint32.
        b: their offsets, uint32.
    """

    bands: int
    rows: int
    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class DedupParams:
    """Args:
        threshold: Jaccard similarity from which two posts are duplicates.
        num_perm: MinHash permutations (signature length).
        shingle: words per shingle.
    """

    threshold: float = 0.8
    num_perm: int = 64
    shingle: int = 3

    def hashing(self) -> Hashing:
        """The bands datasketch's MinHashLSH picks and its MinHash permutations. Its weights lean to recall (a
        false negative weighs 9 false positives): every candidate pair is verified exactly, so a false positive
        costs only a re-read. With 64 permutations: 9 bands of 7, a pair at Jaccard 0.8 is a candidate with
        probability 0.88, at 0.9 with 0.997, at 0.5 with 0.07.

        Asked of datasketch in a short child process (``python -m instruct.filters.dedup``), once per settings
        and installed datasketch: datasketch's lsh module imports scipy (~40 MiB), which no process of the run
        should hold, and the child's start-up costs more CPU than a small run. The answer is kept in the user's
        cache folder (``answer_cache``), keyed by datasketch's version and the settings, and read from there by
        later runs.
        """
        key = (self.threshold, self.num_perm)
        if key not in _ANSWERS:
            _ANSWERS[key] = _recall(self.answer_cache()) or self._ask_child()
        return _ANSWERS[key]

    def _ask_child(self) -> Hashing:
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        child = subprocess.run([sys.executable, "-m", "instruct.filters.dedup", repr(self.threshold),
                                str(self.num_perm)], capture_output=True, env=env)
        if child.returncode != 0 or not child.stdout:
            raise InstructError(f"asking datasketch for the dedup parameters failed (exit {child.returncode}): "
                                f"{child.stderr.decode(errors='replace').strip()[-2000:]}")
        status, payload = pickle.loads(child.stdout)
        if status != "ok":
            raise InstructError(f"dedup.threshold={self.threshold} with dedup.num_perm={self.num_perm}: "
                                f"{payload.strip()[-2000:]} (lower the threshold or raise num_perm)")
        hashing = Hashing(*payload)
        _remember(self.answer_cache(), hashing)
        return hashing

    def answer_cache(self) -> Path | None:
        """Where datasketch's answer for these settings is kept: ``$XDG_CACHE_HOME/instruct`` (else
        ``~/.cache/instruct``), one file per datasketch version and settings. None without datasketch."""
        try:
            version = importlib.metadata.version("datasketch")
        except importlib.metadata.PackageNotFoundError:
            return None  # the child then fails, saying so
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "instruct"
        return root / f"datasketch-{version}-lsh-{self.threshold!r}-{self.num_perm}-seed{_MINHASH_SEED}.json"


_ANSWERS: dict[tuple[float, int], Hashing] = {}  # (threshold, num_perm) → datasketch's answer, for this process


def _recall(path: Path | None) -> Hashing | None:
    """The answer kept at ``path``, or None when there is none or it cannot be read (it is then asked again)."""
    if path is None:
        return None
    try:
        kept = orjson.loads(path.read_bytes())
        hashing = Hashing(kept["bands"], kept["rows"], np.array(kept["a"], dtype=np.uint32),
                          np.array(kept["b"], dtype=np.uint32))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
        return None  # no file, or a cut or foreign one: the child answers, and the file is written again
    return hashing if isinstance(hashing.bands, int) and isinstance(hashing.rows, int) else None


def _remember(path: Path | None, hashing: Hashing) -> None:
    """Keep an answer for later runs; a cache folder that cannot be written only costs them the child."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_bytes(orjson.dumps({"bands": hashing.bands, "rows": hashing.rows,
                                          "a": hashing.a.tolist(), "b": hashing.b.tolist()}))
        partial.replace(path)  # atomic: a run reading it sees the whole answer or none
    except OSError:
        pass


def _ask_datasketch(threshold: float, num_perm: int) -> tuple:
    """The child's answer: ("ok", (bands, rows, a, b)) or ("error", message)."""
    from datasketch import MinHash, MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    except ValueError as exc:
        return "error", str(exc)
    minhash = MinHash(num_perm=num_perm, seed=_MINHASH_SEED, hashfunc=zlib.crc32)
    if minhash.scheme != "affine32" or minhash.permutations.dtype != np.uint32:
        return "error", f"datasketch's MinHash uses scheme {minhash.scheme!r}; the signatures here follow 'affine32'"
    a, b = minhash.permutations
    return "ok", (lsh.b, lsh.r, np.ascontiguousarray(a), np.ascontiguousarray(b))


def _fmix32(hv: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, which datasketch's ``affine32`` scheme applies to each input hash."""
    hv = hv ^ (hv >> np.uint32(16))
    hv = hv * np.uint32(0x85EBCA6B)
    hv = hv ^ (hv >> np.uint32(13))
    hv = hv * np.uint32(0xC2B2AE35)
    return hv ^ (hv >> np.uint32(16))


def signatures(hashes: np.ndarray, starts: np.ndarray, hashing: Hashing, width: int) -> np.ndarray:
    """The first ``width`` MinHash values of many posts at once, equal to datasketch's
    ``MinHash(num_perm, seed=1, hashfunc=zlib.crc32).update_batch(shingles).hashvalues``: every shingle's crc32
    (``hashes``, post by post; a post starts at each of ``starts``) mixed, permuted (``a * h + b`` modulo 2^32)
    and the least per post and permutation kept."""
    # Permutation by permutation (rows), so the reduction runs along contiguous memory: ~4x faster than one
    # row per shingle. The result is the transposed view, post by post.
    permuted = hashing.a[:width, None] * _fmix32(hashes)[None, :]
    permuted += hashing.b[:width, None]
    return np.minimum.reduceat(permuted, starts, axis=1).T


class ClusterIndex:
    """The posts of one cluster in file order, as flat arrays of keys.

    Args:
        params: the dedup settings.
        capacity: the most posts that will be added (the cluster's selected lines).
        hashing: datasketch's answer for the settings (``params.hashing()``).
    """

    def __init__(self, params: DedupParams, capacity: int, hashing: Hashing):
        self.params = params
        self.hashing = hashing
        self.b, self.r = hashing.bands, hashing.rows
        self.lines = np.empty(capacity, dtype=np.int32)
        self.exact = np.empty(capacity, dtype=np.uint64)
        self.band_keys = np.empty((capacity, self.b), dtype=np.uint32)
        self.count = 0
        self._hashes: list[int] = []  # shingle crc32s of the posts added since the last flush
        self._starts: list[int] = []
        self._done = 0  # posts whose band keys are computed

    def add(self, line: int, words: list[str]) -> None:
        """Add a post by its normalised words (``normalize.words``; at least one)."""
        size = self.params.shingle
        at = self.count
        self.lines[at] = line
        joined = " ".join(words).encode()
        self.exact[at] = int.from_bytes(hashlib.blake2b(joined, digest_size=8).digest(), "little")
        self._starts.append(len(self._hashes))
        if len(words) <= size:
            self._hashes.append(zlib.crc32(joined))
        else:  # the same bytes as _shingles, built by C loops (zip, map) rather than a comprehension
            self._hashes.extend(map(zlib.crc32, map(str.encode, map(" ".join, zip(*(words[k:] for k in range(size)))))))
        self.count += 1
        if len(self._hashes) >= _BATCH_HASHES:
            self._flush()

    def _flush(self) -> None:
        """Band keys for the posts added since the last flush, in one numpy pass (a signature matrix of at
        most ~4 MiB)."""
        if not self._starts:
            return
        hashes, starts = np.array(self._hashes, dtype=np.uint32), np.array(self._starts, dtype=np.intp)
        self._hashes.clear()
        self._starts.clear()
        b, r = self.b, self.r
        values = signatures(hashes, starts, self.hashing, b * r).T.astype(np.uint64).reshape(b, r, -1)
        end = self._done + len(starts)
        self.band_keys[self._done:end] = ((values * _FOLD[:r, None]).sum(axis=1, dtype=np.uint64) >> np.uint64(32)).T
        self._done = end

    def duplicates(self, reread) -> dict[int, str]:
        """Line → ``exact`` | ``near`` for every post that repeats an earlier one.

        Args:
            reread: called with the sorted line numbers of the near candidates; returns line → post text.
        """
        self._flush()
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


if __name__ == "__main__":  # the child of DedupParams.hashing: threshold and num_perm in argv, a pickle out
    sys.stdout.buffer.write(pickle.dumps(_ask_datasketch(float(sys.argv[1]), int(sys.argv[2])),
                                         protocol=pickle.HIGHEST_PROTOCOL))
