"""Words, content words and cluster statistics, shared by every task that looks inside a post."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Iterable

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
_TOKEN_CACHE = 1 << 16  # tokens whose content words are remembered (~6 MB at most: memory stays flat)
_HASHTAG = re.compile(r"(?<![\w#])#([^\W\d_]\w*)")


def words(text: str) -> list[str]:
    """Whitespace-free word tokens of a text, in order, case kept."""
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """Words that carry meaning, in order of first use, case kept: letters only (no numbers), at least
    three characters, not a stopword, not part of a handle or a ``<URL>`` token."""
    return list(post_words(text).content)


class PostWords:
    """The words of one post as the post tasks ask for them: computed once, then shared by every task that
    declines or builds from the same post (see ``post_words``).

    Args:
        text: the post.
    """

    __slots__ = ("count", "_tokens", "_content", "_content_lower")

    def __init__(self, text: str):
        self._tokens = text.split()
        self.count = len(self._tokens)  # whitespace-separated words: what a post's length counts
        self._content: tuple[str, ...] | None = None  # filled on first use: a task that declines never needs it
        self._content_lower: tuple[str, ...] = ()

    @property
    def content(self) -> tuple[str, ...]:
        """The content words (see ``content_words``), case kept."""
        if self._content is None:
            self._find_content_words()
        return self._content

    @property
    def content_lower(self) -> tuple[str, ...]:
        """The content words lowercased, the form word statistics count."""
        if self._content is None:
            self._find_content_words()
        return self._content_lower

    def has_content_words(self) -> bool:
        # Stops at the first token that holds one (most posts: within the first few), so a task that only
        # declines never pays for the full list.
        return any(map(_TOKEN_CONTENT_WORDS.__getitem__, self._tokens))

    def _find_content_words(self) -> None:
        first = _content_words(self._tokens)
        self._content, self._content_lower = tuple(first.values()), tuple(first)


# Every task offered a thread asks about the same post (to decline, then to build), so recent posts are kept.
# Bounded, so memory stays flat however many threads flow through (a few MB at most), but larger than a
# 1024-line chunk: paraphrase mining analyses a whole chunk's posts before they are offered, and the tasks
# then find those analyses here (tasks=all: ~81 → ~75 µs a thread).
@lru_cache(maxsize=2048)
def post_words(text: str) -> PostWords:
    """The (shared) word analysis of a post."""
    return PostWords(text)


def _content_words(tokens: list[str]) -> dict[str, str]:
    """Lowercased content word -> its first spelling, in order of first use, from a text's whitespace tokens
    (word tokens never span whitespace, nor do handles and links, so each token can be read on its own)."""
    first: dict[str, str] = {}
    for pairs in map(_TOKEN_CONTENT_WORDS.__getitem__, tokens):
        for lower, word in pairs:
            if lower not in first:
                first[lower] = word
    return first


def _token_content_words(token: str) -> tuple[tuple[str, str], ...]:
    """``(lowercased, as written)`` of each content word in a whitespace-free token (``parks``, ``well,``
    ``#Climate``, ``don't``), none from a handle or a ``<URL>``-style token."""
    if token.isalpha():  # a bare word, the common case
        found = [token]
    else:
        if "@" in token or "<" in token or "http" in token or "www." in token:
            token = NOT_PROSE.sub(" ", token)
        # isalpha() is the fast yes; words with an apostrophe (or rare numeric letters) ask the pattern.
        found = [word for word in _WORD.findall(token) if word.isalpha() or _ALPHA_WORD.fullmatch(word)]
    return tuple((word.lower(), word) for word in found if len(word) > 2 and word.lower() not in STOPWORDS)


class _TokenCache(dict):
    """Token -> ``_token_content_words(token)``, read by plain indexing.

    A post's tokens are mostly common words, so each token is looked into once and its answer kept (a miss
    costs ~2x an uncached reading). A dict indexed through ``map(cache.__getitem__, tokens)`` answers a hit in
    C: ~45 ns a token against ~65 ns through ``functools.lru_cache``, which took a 14-word post's content words
    from ~2.7 to ~1.9 µs. Bounded by emptying it when full, so memory stays flat and the vocabulary of the
    data being read refills it; at ``_TOKEN_CACHE`` tokens it hits a little more often than the LRU of 16k
    tokens it replaced (simulated on Zipf-distributed words; on real BluePrint text ~80 % of tokens are seen
    before).
    """

    __slots__ = ()

    def __missing__(self, token: str) -> tuple[tuple[str, str], ...]:
        if len(self) >= _TOKEN_CACHE:
            self.clear()
        found = self[token] = _token_content_words(token)
        return found


_TOKEN_CONTENT_WORDS = _TokenCache()


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
    _idf: "_IdfTable" = field(init=False, repr=False, compare=False)  # word → idf, filled on first lookup

    def __post_init__(self) -> None:
        self._idf = _IdfTable(self.doc_freq, self.documents)

    def add(self, text: str) -> None:
        self.documents += 1
        self._idf.clear()  # every idf changes with the document count
        self._idf.documents = self.documents
        # Not through the post_words cache: a statistics sample would only push out the posts being offered.
        # (Counted from the keys view: a dict itself would be taken for word -> count.)
        self.doc_freq.update(_content_words(text.split()).keys())

    def idf(self, word: str) -> float:
        """Smoothed inverse document frequency: rare words score high, unseen words highest."""
        return self._idf[word.lower()]

    def idfs(self, lowered: Iterable[str]) -> list[float]:
        """``idf`` of each of already lowercased words (a table lookup each, no method call per word)."""
        return list(map(self._idf.__getitem__, lowered))

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "ClusterStats":
        stats = cls()
        for text in texts:
            stats.add(text)
        return stats


class _IdfTable(dict):
    """Lowercased word → smoothed idf for the given document frequencies, computed on the first lookup of
    each word. It holds the counts, not the ``ClusterStats``: the two form no reference cycle, which would keep
    a shard's statistics alive until a rare full garbage collection."""

    __slots__ = ("doc_freq", "documents")

    def __init__(self, doc_freq: Counter, documents: int):
        super().__init__()
        self.doc_freq = doc_freq
        self.documents = documents

    def __missing__(self, lower: str) -> float:
        value = math.log((1 + self.documents) / (1 + self.doc_freq.get(lower, 0))) + 1.0
        if len(self) < _IDF_CACHE:
            self[lower] = value
        return value
