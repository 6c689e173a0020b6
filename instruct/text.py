"""Words, content words and cluster statistics, shared by every task that looks inside a post."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Iterable, Iterator

# A compact English stopword list (function words and social-media filler); a keyword or topic word is
# never one of these.
STOPWORDS = frozenset("""
a about above after again against all almost also am among an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't down during each either else ever every few for from further get gets getting got had hadn't has
hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's i i'd
i'll i'm i've if in into is isn't it it's its itself just least less let's like likely made make many may
me might more most much must mustn't my myself no nor not now of off often on once one only or other
ought our ours ourselves out over own per rather really same say says said shall shan't she she'd she'll
she's should shouldn't since so some still such than that that's the their theirs them themselves then
there there's these they they'd they'll they're they've this those though through to too under until up
upon us very via was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
whether which while who who's whom whose why why's will with within without won't would wouldn't yet you
you'd you'll you're you've your yours yourself yourselves yes yeah ok okay lol im dont cant wont thats
gonna wanna gotta going go goes went know think thing things way lot lots even well back new today
""".split())

_WORD = re.compile(r"\w+(?:['’]\w+)*")
# Tokens that are not words of the post's language: handles, <URL>-style placeholders, links.
NOT_PROSE = re.compile(r"@[\w.\-]+|<[A-Za-z_]+>|https?://\S+|www\.\S+")
_ALPHA_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_IDF_CACHE = 100_000  # words whose idf is remembered per cluster (bounded: memory stays flat)
_HASHTAG = re.compile(r"(?<![\w#])#([^\W\d_]\w*)")


def words(text: str) -> list[str]:
    """Whitespace-free word tokens of a text, in order, case kept."""
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """Words that carry meaning, in order of first use, case kept: letters only (no numbers), at least
    three characters, not a stopword, not part of a handle or a ``<URL>`` token."""
    return list(_content_words(text))


def has_content_words(text: str) -> bool:
    """Whether ``content_words(text)`` is non-empty; stops at the first one (a cheap check to decline)."""
    return next(_iter_content_words(text), None) is not None


# Several tasks ask for the same post's content words (to decline, then to build), so recent answers are
# kept; a bounded cache, so memory stays flat however many threads flow through.
@lru_cache(maxsize=4096)
def _content_words(text: str) -> tuple[str, ...]:
    return tuple(_iter_content_words(text))


def _iter_content_words(text: str) -> Iterator[str]:
    if "@" in text or "<" in text or "http" in text or "www." in text:
        text = NOT_PROSE.sub(" ", text)
    seen: set[str] = set()
    for word in _WORD.findall(text):
        if len(word) < 3:
            continue
        lower = word.lower()
        # isalpha() is the fast yes; words with an apostrophe (or rare numeric letters) ask the pattern.
        if lower in seen or lower in STOPWORDS or not (word.isalpha() or _ALPHA_WORD.fullmatch(word)):
            continue
        seen.add(lower)
        yield word


def hashtags(text: str) -> list[str]:
    """Hashtags of a text, without ``#``, in order of first use."""
    return list(dict.fromkeys(_HASHTAG.findall(text)))


def join_words(items: list[str]) -> str:
    """``a`` / ``a and b`` / ``a, b and c``: a list as a prompt says it."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def contains_whole_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


@dataclass(slots=True)
class ClusterStats:
    """Document frequencies of lowercased content words over a sample of a cluster's posts.

    Args:
        documents: how many posts were counted.
        doc_freq: in how many of them each word occurs.
    """

    documents: int = 0
    doc_freq: Counter = field(default_factory=Counter)
    _idf: dict = field(default_factory=dict, repr=False, compare=False)  # word → idf, filled on use

    def add(self, text: str) -> None:
        self._idf.clear()  # every idf changes with the document count
        self.documents += 1
        self.doc_freq.update({w.lower() for w in content_words(text)})

    def idf(self, word: str) -> float:
        """Smoothed inverse document frequency: rare words score high, unseen words highest."""
        value = self._idf.get(word)
        if value is None:
            value = math.log((1 + self.documents) / (1 + self.doc_freq.get(word.lower(), 0))) + 1.0
            if len(self._idf) < _IDF_CACHE:
                self._idf[word] = value
        return value

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "ClusterStats":
        stats = cls()
        for text in texts:
            stats.add(text)
        return stats
