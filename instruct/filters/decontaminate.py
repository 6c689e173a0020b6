"""Decontamination: drop every thread (and Dolly row) that shares an evaluation id or an n-gram of words with
an evaluation set, before any task sees it.

Like datatrove's ``NGramsDecontFilter``: the evaluation texts are cut into word n-grams (13 by default), and a
training text is contaminated when one of its n-grams is among them. Texts are compared after
``normalize.words`` (NFKC, case, punctuation, whitespace). The n-grams run across message boundaries on both
sides, so an evaluation text split over two messages is still found. The index keeps the n-gram strings
themselves, so a match is exact and its n-gram can be reported.

Building and looking up every n-gram string of every thread is what costs, and nearly all of them are in no
evaluation set. So a batch of threads is first hashed at once (ngramhash.py: each n-gram's 64-bit polynomial
hash, tested against the evaluation n-grams' hashes), and only an n-gram whose hash is among them is built as a
string and looked up in the exact index; a hash collision is turned away there. ``match_words`` is the
definition (every n-gram string, in order) that the batch path is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from instruct.errors import InstructError
from instruct.filters import normalize
from instruct.filters.polyhash import Powers
from instruct.filters.evalsets import read_eval_file, sha256_of
from instruct.filters.ngramhash import HashSet, ngram_spans, sizes
from instruct.records import Thread


_BATCH_BYTES = 1 << 17  # texts hashed at once: their prefix sums and power tables stay within a few MiB


@dataclass(slots=True)
class EvalFile:
    """Args:
        path: the file.
        sha256: of its bytes (part of the version id).
        shape: batch_input | solutions | cluster | jsonl.
        records: items read.
        ngrams: distinct n-grams it added to the index.
    """

    path: str
    sha256: str
    shape: str
    records: int = 0
    ngrams: int = 0


@dataclass(slots=True)
class Match:
    """Why a text is contaminated. Args: eval_id; eval_file (index into the files); by: ``id`` or ``ngram``;
    ngram: the shared n-gram (normalised), for ``by="ngram"``."""

    eval_id: str
    eval_file: int
    by: str  # id | ngram | text (a whole short text)
    ngram: str | None = None


@dataclass
class Decontaminator:
    """The evaluation sets as an index of ids and n-grams.

    Args:
        n: n-gram length in words.
        short_words: texts with at least this many words and fewer than ``n`` are matched as whole texts
            (0: never).
        files: the evaluation files, in the configured order.
        ids: evaluation thread id → (eval id, file index).
        grams: n-gram → (eval id, file index) of the first evaluation item that has it.
        whole: short text (its words joined by spaces) → (eval id, file index), likewise.
        hashes: the hashes of ``grams`` (``ngramhash``), which the batch path looks at first.
        whole_joined: ``whole`` keyed by the UTF-8 bytes (what ``normalize.joined`` gives).
    """

    n: int
    short_words: int = 0
    files: list[EvalFile] = field(default_factory=list)
    ids: dict[str, tuple[str, int]] = field(default_factory=dict)
    grams: dict[str, tuple[str, int]] = field(default_factory=dict)
    whole: dict[str, tuple[str, int]] = field(default_factory=dict)
    hashes: HashSet = field(default_factory=lambda: HashSet(np.empty(0, dtype=np.uint64)))
    whole_joined: dict[bytes, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: list[str], n: int, text_field: str, short_words: int = 0) -> "Decontaminator":
        """Read every file; a missing, unreadable or unknown-shape file fails naming it."""
        index = cls(n, short_words)
        for number, name in enumerate(paths):
            path = Path(name)
            if not path.is_file():
                raise InstructError(f"decontaminate.paths: evaluation file not found: {path}")
            shape, records = read_eval_file(path, text_field)
            info = EvalFile(str(path), sha256_of(path), shape)
            before = len(index.grams)
            for record in records:
                info.records += 1
                source = (record.eval_id, number)
                if record.thread_id is not None:
                    index.ids.setdefault(record.thread_id, source)
                for gram in normalize.ngrams(_words_of(record.texts), n):
                    index.grams.setdefault(gram, source)
                for text in record.texts:
                    key = index._short_key(normalize.words(text))
                    if key is not None:
                        index.whole.setdefault(key, source)
            info.ngrams = len(index.grams) - before
            index.files.append(info)
        index.hashes = HashSet(_hashes_of(list(index.grams), n))
        index.whole_joined = {key.encode(): source for key, source in index.whole.items()}
        return index

    def match_texts(self, texts: list[str]) -> Match | None:
        """The first n-gram of the texts (read in order, across their boundaries) that an evaluation item has,
        else the first of them that is a short evaluation text as a whole."""
        return self.match_words([normalize.words(text) for text in texts])  # one at a time: no batch to hash

    def match_words(self, words: list[list[str]]) -> Match | None:
        """``match_texts`` for texts already normalised (``normalize.words`` of each), by the definition: every
        n-gram string in turn."""
        grams = self.grams
        for gram in normalize.ngrams([word for text in words for word in text], self.n):
            found = grams.get(gram)
            if found is not None:
                return Match(found[0], found[1], "ngram", gram)
        if self.whole:
            for text in words:
                key = self._short_key(text)
                found = self.whole.get(key) if key is not None else None
                if found is not None:
                    return Match(found[0], found[1], "text", key)
        return None

    def _short_key(self, words: list[str]) -> str | None:
        return " ".join(words) if self.short_words and self.short_words <= len(words) < self.n else None

    def match_thread(self, thread: Thread) -> Match | None:
        """An evaluation id equal to the thread's own id (only a record's real ``id`` counts), else a shared
        n-gram of its messages, else one of them that is a short evaluation text."""
        own_id = thread.id if "id" in thread.fields else None
        return self.match_many([own_id], [[normalize.joined(m.text) for m in thread.messages if m.text]]).get(0)

    def match_record(self, own_id: str | None, words: list[list[str]]) -> Match | None:
        """``match_thread`` by the definition, for a thread given by its own id (None: the record has none) and
        the normalised words of its messages that have text."""
        if own_id is not None:
            found = self.ids.get(own_id)
            if found is not None:
                return Match(found[0], found[1], "id")
        return self.match_words(words)

    def match_many(self, own_ids: list[str | None], joined: list[list[bytes]],
                   powers: Powers | None = None) -> dict[int, Match]:
        """``match_record`` of many threads, by position, for those that match: each given by its own id and
        ``normalize.joined`` of each of its messages that has text. ``powers``: the hash tables to use and grow
        (a cluster's pass keeps one). Nearly no thread matches, so each kind of match is first looked for in
        the whole batch at once."""
        found: dict[int, Match] = {}
        ids, whole = self.ids, self.whole_joined
        if not ids.keys().isdisjoint(own_ids):
            for number, own_id in enumerate(own_ids):
                source = ids.get(own_id)
                if source is not None:
                    found[number] = Match(source[0], source[1], "id")
        for number, match in self._ngram_matches(joined, powers or Powers()).items():
            found.setdefault(number, match)
        if whole and not whole.keys().isdisjoint(chain.from_iterable(joined)):
            for number, texts in enumerate(joined):
                if number not in found and not whole.keys().isdisjoint(texts):
                    key = next(filter(whole.__contains__, texts))
                    found[number] = Match(whole[key][0], whole[key][1], "text", key.decode())
        return found

    def _ngram_matches(self, joined: list[list[bytes]], powers: Powers) -> dict[int, Match]:
        """Thread number → the first of its n-grams in the index, for the threads that have one. The threads are
        hashed a batch of at most ``_BATCH_BYTES`` at a time; one longer alone is read string by string (its
        tables would be as long as itself)."""
        found: dict[int, Match] = {}
        ends = np.cumsum(sizes(joined))
        start = 0
        while start < len(joined):
            end = max(int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _BATCH_BYTES, "right")),
                      start + 1)
            if end == start + 1 and ends[start] - (ends[start - 1] if start else 0) > _BATCH_BYTES:
                words = [word for text in joined[start] for word in text.decode().split()]
                match = self.match_words([words])  # one text: its short-text match is not the thread's
                if match is not None and match.by == "ngram":
                    found[start] = match
            else:
                spans = ngram_spans(joined[start:end], self.n, powers)
                for at in self.hashes.members(spans.hashes).tolist():  # ascending: each thread's n-grams in order
                    number = start + int(spans.threads[at])
                    gram = spans.text(at)
                    source = self.grams.get(gram) if number not in found else None  # None: a hash collision
                    if source is not None:
                        found[number] = Match(source[0], source[1], "ngram", gram)
            start = end
        return found


def _hashes_of(grams: list[str], n: int) -> np.ndarray:
    """The hashes of the n-grams, a batch at a time (each is one n-gram of ``n`` words)."""
    powers, parts, batch, size = Powers(), [], [], 0
    for gram in grams:
        batch.append([gram.encode()])
        size += len(batch[-1][0]) + 1
        if size >= _BATCH_BYTES:
            parts.append(ngram_spans(batch, n, powers).hashes)
            batch, size = [], 0
    parts.append(ngram_spans(batch, n, powers).hashes)
    return np.concatenate(parts)


def _words_of(texts: list[str]) -> list[str]:
    words: list[str] = []
    for text in texts:
        words += normalize.words(text)
    return words
