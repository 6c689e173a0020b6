"""Near-duplicate removal within a cluster: MinHash LSH over word shingles (datasketch), the first in file
order kept.

A thread is compared by its anchor post (the post the post-writing tasks write), normalised like every filter
(``normalize.joined``). Its shingles are runs of ``shingle`` words (a shorter post is one shingle). Each post's
signature is datasketch's ``MinHash(num_perm, seed=1, hashfunc=shingle_hash)`` of its shingles (the tests check
equality on the real sample), computed here for a batch of posts in one numpy pass with datasketch's own
permutations; datasketch's ``MinHashLSH`` chooses the bands for the Jaccard threshold (see
``DedupParams.hashing``). ``shingle_hash`` is a polynomial hash of the shingle's bytes, finalised and cut to 32
bits: unlike a crc32 per shingle, the polynomial hashes of every shingle of a batch follow from one prefix sum
over the batch's bytes, with no Python code per shingle.

datasketch's ``MinHashLSH`` keeps a Python dict and a set per band bucket: ~1.4 KB a post with 32
permutations, over 300 MiB for a 250 k-thread cluster. So the index here is flat numpy: one 32-bit key per band
(the band's hash values folded with fixed odd multipliers), a 64-bit polynomial hash of the whole normalised
text and the line number: 4 × bands + 12 bytes a post, 48 with the default 9 bands. After one pass over the
cluster, only the posts that share a key with another are looked at again; a shared key only proposes. Those
posts are re-read and parsed (the stage adds what a line's JSON says without validating it, so a line the
shards reject is dropped here, before it can make a later post its duplicate), and are then grouped by their
exact text and by band keys; a pair sharing a band key is kept only when the Jaccard similarity of the two
shingle sets, computed exactly, reaches the threshold. Posts joined by such pairs form groups (connected
components, as in datatrove's MinHash dedup); each group keeps its first post in file order, and the others are
removed as ``exact`` (the same normalised text occurs earlier) or ``near`` duplicates.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instruct import usercache
from instruct.errors import InstructError
from instruct.filters import normalize
from instruct.filters.polyhash import Powers, SpanHashes, polynomial, word_bounds

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


def shingle_hash(shingle: bytes) -> int:
    """A shingle's 32-bit hash: the high half of its polynomial hash after MurmurHash3's 64-bit finalizer
    (the polynomial alone leaves strings that differ in their last bytes close together)."""
    return int(_fmix64(np.array([polynomial(shingle)], dtype=np.uint64))[0] >> np.uint64(32))


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
        """Where datasketch's answer for these settings is kept (see usercache). None without datasketch."""
        return usercache.cache_file("datasketch", f"lsh-{self.threshold!r}-{self.num_perm}-seed{_MINHASH_SEED}")


_ANSWERS: dict[tuple[float, int], Hashing] = {}  # (threshold, num_perm) → datasketch's answer, for this process


def _recall(path: Path | None) -> Hashing | None:
    """The answer kept at ``path``, or None when there is none or it cannot be read (it is then asked again)."""
    kept = usercache.recall(path)
    try:
        hashing = Hashing(kept["bands"], kept["rows"], np.array(kept["a"], dtype=np.uint32),
                          np.array(kept["b"], dtype=np.uint32))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None  # nothing kept, or a foreign file: the child answers, and the file is written again
    return hashing if isinstance(hashing.bands, int) and isinstance(hashing.rows, int) else None


def _remember(path: Path | None, hashing: Hashing) -> None:
    """Keep an answer for later runs."""
    usercache.remember(path, {"bands": hashing.bands, "rows": hashing.rows, "a": hashing.a.tolist(),
                              "b": hashing.b.tolist()})


def _ask_datasketch(threshold: float, num_perm: int) -> tuple:
    """The child's answer: ("ok", (bands, rows, a, b)) or ("error", message)."""
    from datasketch import MinHash, MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    except ValueError as exc:
        return "error", str(exc)
    minhash = MinHash(num_perm=num_perm, seed=_MINHASH_SEED)
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


def _fmix64(hv: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer."""
    hv = hv ^ (hv >> np.uint64(33))
    hv = hv * np.uint64(0xFF51AFD7ED558CCD)
    hv = hv ^ (hv >> np.uint64(33))
    hv = hv * np.uint64(0xC4CEB9FE1A85EC53)
    return hv ^ (hv >> np.uint64(33))


def _post_hashes(posts: list[bytes], size: int,
                 powers: Powers | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For posts given by their normalised words (``normalize.joined``, at least one word each): every
    shingle's ``shingle_hash`` (post by post, in order), where each post's shingles start, and each post's
    64-bit ``polynomial``, all from one pass over the batch's bytes (polyhash). ``powers``: the tables to use
    and grow (a new one when None).
    """
    lengths = np.fromiter(map(len, posts), dtype=np.int64, count=len(posts))
    data = np.frombuffer(b" ".join(posts) + b" ", dtype=np.uint8)  # every word, and so every post, ends in a space
    word_starts, word_ends = word_bounds(data)
    post_ends = np.cumsum(lengths + 1) - 1
    last_word = np.searchsorted(word_ends, post_ends)
    first_word = np.empty_like(last_word)
    first_word[0] = 0
    first_word[1:] = last_word[:-1] + 1
    words = last_word - first_word + 1
    counts = np.maximum(words - size + 1, 1)  # a post of at most `size` words is one shingle
    starts = np.cumsum(counts) - counts
    first = np.arange(int(counts.sum())) - np.repeat(starts - first_word, counts)  # each shingle's first word
    last = first + np.repeat(np.minimum(words, size) - 1, counts)
    spans = SpanHashes(data, powers or Powers())
    shingles = (_fmix64(spans.of(word_starts[first], word_ends[last])) >> np.uint64(32)).astype(np.uint32)
    return shingles, starts, spans.of(post_ends - lengths, post_ends)


def signatures(hashes: np.ndarray, starts: np.ndarray, hashing: Hashing, width: int) -> np.ndarray:
    """The first ``width`` MinHash values of many posts at once, equal to datasketch's
    ``MinHash(num_perm, seed=1, hashfunc=<the hash of hashes>).update_batch(shingles).hashvalues``: every
    shingle's hash (``hashes``, post by post; a post starts at each of ``starts``) mixed, permuted
    (``a * h + b`` modulo 2^32) and the least per post and permutation kept."""
    # Permutation by permutation (rows), so the reduction runs along contiguous memory; the result is the
    # transposed view, post by post.
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
        self._posts: list[bytes] = []  # the posts added since the last flush
        self._lines: list[int] = []
        self._words = 0  # their words: at least their shingles
        self._powers = Powers()

    def add(self, line: int, joined: bytes) -> None:
        """Add a post by its normalised words (``normalize.joined``; at least one)."""
        self._posts.append(joined)
        self._lines.append(line)
        self._words += joined.count(b" ") + 1
        if self._words >= _BATCH_HASHES:
            self._flush()

    def _flush(self) -> None:
        """Keys for the posts added since the last flush, in one numpy pass (a signature matrix of at most
        ~4 MiB)."""
        if not self._posts:
            return
        hashes, starts, exact = _post_hashes(self._posts, self.params.shingle, self._powers)
        start, end = self.count, self.count + len(self._posts)
        self.lines[start:end] = self._lines
        self.exact[start:end] = exact
        self._posts.clear()
        self._lines.clear()
        self._words = 0
        b, r = self.b, self.r
        values = signatures(hashes, starts, self.hashing, b * r).T.astype(np.uint64).reshape(b, r, -1)
        self.band_keys[start:end] = ((values * _FOLD[:r, None]).sum(axis=1, dtype=np.uint64) >> np.uint64(32)).T
        self.count = end

    def duplicates(self, reread) -> dict[int, str]:
        """Line → ``exact`` | ``near`` for every post that repeats an earlier one.

        Only the posts that share a key with another are looked at again: the others repeat no post. They are
        re-read and parsed, which drops the lines the shards reject (``add`` was given what their JSON says,
        unchecked) and gives their exact text, so the keys only ever propose; the text decides.

        Args:
            reread: called with sorted line numbers; yields (line, anchor post text) for those the shards
                accept, in that order.
        """
        self._flush()
        n = self.count
        shared, later = _shared(self.exact[:n])
        banded = np.zeros(n, dtype=bool)
        for band in range(self.b):
            banded |= _repeated(self.band_keys[:n, band])
        rows = np.flatnonzero(shared | banded)
        if not len(rows):
            return {}
        at = {int(line): row for row, line in zip(rows.tolist(), self.lines[rows].tolist())}
        # Texts kept for the near comparison: of the posts that share a band key, the first of each exact key
        # (the later copies' texts are the same; a gzip stream read a second time costs a whole pass).
        near = banded & ~later
        digests: dict[bytes, int] = {}  # a digest of each distinct normalised text → its number
        kept, same, texts = [], [], {}
        for line, text in reread(sorted(at)):
            row = at[line]
            kept.append(row)
            digest = hashlib.blake2b(normalize.joined(text), digest_size=16).digest()
            same.append(digests.setdefault(digest, len(digests)))
            if near[row]:
                texts[line] = text
        return self._groups(np.array(kept, dtype=np.intp), np.array(same, dtype=np.int64), texts, reread)

    def _groups(self, rows: np.ndarray, same: np.ndarray, texts: dict[int, str], reread) -> dict[int, str]:
        """``duplicates`` among the accepted posts that share a key (``rows``, in file order; ``same``: the
        number of each one's text; ``texts``: line → text, read again for the lines it lacks)."""
        lines = self.lines[rows]
        exact_pairs = _pairs(same)
        exact_first = {later for later, _ in exact_pairs}
        # An exact repeat is removed with its first copy's group: only the first copies look for near ones.
        firsts = np.ones(len(rows), dtype=bool)
        firsts[list(exact_first)] = False
        representatives = np.flatnonzero(firsts)
        band_keys = self.band_keys[rows[representatives]]
        near_pairs = set()
        for band in range(self.b):
            near_pairs.update((int(representatives[a]), int(representatives[b])) for a, b in _pairs(band_keys[:, band]))
        if near_pairs:
            wanted = sorted({int(lines[i]) for pair in near_pairs for i in pair})
            missing = [line for line in wanted if line not in texts]  # a copy whose first was rejected, or a chance key
            texts.update(reread(missing) if missing else ())
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


def _repeated(keys: np.ndarray) -> np.ndarray:
    """Which keys occur more than once (a sort of the values: cheaper than ``_shared``'s stable argsort)."""
    ordered = np.sort(keys)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    return np.isin(keys, repeated) if len(repeated) else np.zeros(len(keys), dtype=bool)


def _shared(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which keys occur more than once, and which repeat an earlier one."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    shared = np.zeros(len(keys), dtype=bool)
    later = np.zeros(len(keys), dtype=bool)
    later[order[1:][same]] = True
    shared[order[:-1][same]] = True
    return shared | later, later


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
