"""Decontamination: drop every thread (and Dolly row) that shares an evaluation id or an n-gram of words with
an evaluation set, before any task sees it.

Like datatrove's ``NGramsDecontFilter``: the evaluation texts are cut into word n-grams (13 by default), and a
training text is contaminated when one of its n-grams is among them. Texts are compared after
``normalize.words`` (NFKC, case, punctuation, whitespace). The n-grams run across message boundaries on both
sides, so an evaluation text split over two messages is still found. The index keeps the n-gram strings
themselves (not hashes), so a match is exact and its n-gram can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from instruct.errors import InstructError
from instruct.filters import normalize
from instruct.filters.evalsets import read_eval_file, sha256_of
from instruct.records import Thread


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
    """

    n: int
    short_words: int = 0
    files: list[EvalFile] = field(default_factory=list)
    ids: dict[str, tuple[str, int]] = field(default_factory=dict)
    grams: dict[str, tuple[str, int]] = field(default_factory=dict)
    whole: dict[str, tuple[str, int]] = field(default_factory=dict)

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
        return index

    def match_texts(self, texts: list[str]) -> Match | None:
        """The first n-gram of the texts (read in order, across their boundaries) that an evaluation item has."""
        return self.match_words([normalize.words(text) for text in texts])

    def match_words(self, words: list[list[str]]) -> Match | None:
        """``match_texts`` for texts already normalised (``normalize.words`` of each)."""
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

    def match_thread(self, thread: Thread, words: list[list[str]] | None = None) -> Match | None:
        """An evaluation id equal to the thread's own id (only a record's real ``id`` counts), else a shared
        n-gram of its messages; ``words``: their normalised words, message by message."""
        if words is None:
            words = [normalize.words(m.text) for m in thread.messages if m.text]
        return self.match_record(thread.id if "id" in thread.fields else None, words)

    def match_record(self, own_id: str | None, words: list[list[str]]) -> Match | None:
        """``match_thread`` for a thread given by its own id (None: the record has none) and the normalised
        words of its messages that have text (the stage reads them without parsing the thread)."""
        if own_id is not None:
            found = self.ids.get(own_id)
            if found is not None:
                return Match(found[0], found[1], "id")
        return self.match_words(words)


def _words_of(texts: list[str]) -> list[str]:
    words: list[str] = []
    for text in texts:
        words += normalize.words(text)
    return words
