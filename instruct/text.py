"""Words, content words and cluster statistics, shared by every task that looks inside a post."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Iterable

from stop_words import get_stop_words

from instruct import usercache

# Stopwords: the maintained English list of the ``stop-words`` package, plus the social-media filler and link
# fragments it lacks (a keyword or topic word is never one of these). Apostrophes are compared straight, so
# "don’t" is the stopword "don't".
_SOCIAL_FILLER = """
lol lmao lmfao omg wtf tbh imo imho idk btw smh ngl fyi irl rofl haha hahaha hehe yeah yep nope yea okay
gonna wanna gotta kinda sorta dunno ain't y'all
http https www com org net html amp nbsp url
"""
STOPWORDS = frozenset(word.replace("’", "'").lower() for word in get_stop_words("en")) | frozenset(_SOCIAL_FILLER.split())

# General English word frequencies (wordfreq's "small" list: the ~29 k words of Zipf frequency >= 3, 3 MB):
# a word at or above a task's ``max_zipf`` is filler ("time", "people", "good") and makes no keyword or topic.
# A word not in the list is rarer than Zipf 3 (a name, a typo, slang) and gets RARE_ZIPF.
RARE_ZIPF = 0.0


def _zipf_table() -> dict[str, float]:
    """Lowercased word -> Zipf frequency, every word of wordfreq's small list, so a lookup is one dict access.
    Kept in the user's cache folder (usercache): importing wordfreq brings langcodes, ftfy and regex into every
    process, where reading the kept table is one orjson call (floats read back exactly)."""
    def build() -> dict[str, float]:
        from wordfreq import get_frequency_dict

        return {word: math.log10(frequency) + 9.0
                for word, frequency in get_frequency_dict("en", wordlist="small").items()}

    return usercache.kept_table("wordfreq", "en-small-zipf", build)


_ZIPF = _zipf_table()


def zipf(lowered: str) -> float:
    """Zipf frequency of a lowercased word in general English (log10 of uses per billion words)."""
    return _ZIPF.get(lowered, RARE_ZIPF)


@lru_cache(maxsize=1)
def _word_class_table() -> dict[str, frozenset[str]]:
    """Lowercased word -> the parts of speech (UPOS) lemminflect's lexicon allows it, for every word of the Zipf
    table the lexicon knows. Kept in the user's cache folder (usercache): lemminflect loads its whole lexicon
    before the first answer, where the kept table is one orjson call. Built on first use, so a run whose tasks
    never ask pays nothing."""
    def build() -> dict[str, list[str]]:
        from lemminflect import getAllLemmas

        return {word: sorted(classes) for word in _ZIPF if (classes := getAllLemmas(word))}

    table = usercache.kept_table("lemminflect", "en-small-word-classes", build)
    return {word: frozenset(classes) for word, classes in table.items()}


def word_classes(lowered: str) -> frozenset[str]:
    """The parts of speech a lowercased word can take ("NOUN", "VERB", "ADJ", "ADV", "AUX"), whatever its
    context; empty for a word the lexicon lacks (a name, slang, a rare word)."""
    return _word_class_table().get(lowered, frozenset())


@lru_cache(maxsize=8)
def filler_words(max_zipf: float) -> frozenset[str]:
    """The lowercased words at or above ``max_zipf`` in general English (``max_zipf`` > RARE_ZIPF): the filler
    a task never names. A set, so a post's words are checked against it in one call, not a lookup each."""
    return frozenset(word for word, value in _ZIPF.items() if value >= max_zipf)


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
    """Words that carry meaning, in order of first use: letters only (no numbers), at least three characters,
    not a stopword (curly apostrophes read as straight), not a contraction (a possessive counts as its noun),
    not part of a handle or a ``<URL>`` token; case-normalised by ``written_form``."""
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
# Bounded, so memory stays flat however many threads flow through (a few MB at most); a summarization feed
# or a needle haystack reads the posts of up to a few dozen earlier threads again, which are still here.
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
    """``(lowercased, written)`` of each content word in a whitespace-free token (``parks``, ``well,``
    ``#Climate``, ``Trump’s``), none from a handle or a ``<URL>``-style token; ``written`` is its
    case-normalised form (see ``written_form``)."""
    if token.isalpha():  # a bare word, the common case
        found = [token]
    else:
        if "@" in token or "<" in token or "http" in token or "www." in token:
            token = NOT_PROSE.sub(" ", token)
        found = []
        for word in _WORD.findall(token):
            if word.isalpha():
                found.append(word)
            elif _ALPHA_WORD.fullmatch(word):  # letters joined by apostrophes (straight or curly)
                # A possessive is its noun (Trump’s -> Trump); any other is a contraction (don’t, I’ve,
                # y'all), never a content word.
                if word[-2:].lower() in ("'s", "’s") and word[:-2].isalpha():
                    found.append(word[:-2])
    return tuple((word.lower(), written_form(word)) for word in found
                 if len(word) > 2 and word.lower() not in STOPWORDS)


def written_form(word: str) -> str:
    """A word as a prompt names it: lowercase and capitalised words as written (proper nouns keep their
    capital); shouting (``BIRTHDAY``) and mixed case (``gLitcH``) lowercased; a short all-caps word that is
    not a common English word (``NASA``, ``FEMA``), or its plural (``GPs``), kept as an acronym."""
    if word.islower() or word.istitle():
        return word
    if word.isupper() and len(word) <= 4 and zipf(word.lower()) < 5.0:
        return word
    if len(word) <= 5 and word[-1] == "s" and word[:-1].isupper():  # a plural acronym (AOCs, GPs)
        return word
    return word.lower()


class _TokenCache(dict):
    """Token -> ``_token_content_words(token)``, read by plain indexing.

    A post's tokens are mostly common words, so each token is looked into once and its answer kept (a miss
    costs about twice an uncached reading). A dict indexed through ``map(cache.__getitem__, tokens)`` answers a
    hit in C, faster than ``functools.lru_cache``. Bounded by emptying it when full, so memory stays flat and the vocabulary of the
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
    """Whether ``word`` occurs in ``text`` as a whole word, in any case (a keyword is named case-normalised)."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


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
        # Not through the post_words cache: a statistics sample would only push out the posts being offered.
        self.add_post(PostWords(text))

    def add_post(self, analysis: PostWords) -> None:
        """Count a post by its word analysis (a worker keeps it on the thread, which it offers later)."""
        self.documents += 1
        self._idf.clear()  # every idf changes with the document count
        self._idf.documents = self.documents
        self.doc_freq.update(analysis.content_lower)

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


_TRAILING = ".,!?;:…\"'’”)]*"
_SENTENCE_END = re.compile(r"[.!?…:;]['\"’”)\]]*$")
# A handle, a link or a line break ends a run: each becomes a lone "." (which also starts a sentence), so a
# list of names, one a line, gives each name, not "Japan Neil Pierre" across two lines (str.splitlines' breaks).
_RUN_BREAK = re.compile(NOT_PROSE.pattern + r"|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def phrase_runs(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
    """Runs of consecutive content words of a text, as ``(written, lowercased, first word's index among the
    text's prose words)``: the candidate keyphrases of a post (a stopword, a handle, a link, a number, a hashtag,
    punctuation or a line break ends a run, as in RAKE and YAKE). A run's capitalised first word that only starts
    a sentence or a line ("Trade talks …") is lowercased when it is a common English word; a name keeps its
    capital."""
    runs: list[tuple[tuple[str, ...], tuple[str, ...], int]] = []
    written: list[str] = []
    lowered: list[str] = []
    start = index = 0
    sentence_start = opens_sentence = True

    def close() -> None:
        first = written[0]
        # "Trade talks" at a sentence start is "trade talks"; "Social Security" stays a name.
        if opens_sentence and first.istitle() and zipf(lowered[0]) >= 4.0 and \
                (len(written) == 1 or not written[1][:1].isupper()):
            written[0] = lowered[0]
        runs.append((tuple(written), tuple(lowered), start))
        written.clear()
        lowered.clear()

    for token in _RUN_BREAK.sub(" . ", text).split():
        pairs = _TOKEN_CONTENT_WORDS[token]
        # A token continues a run only when it is one content word, maybe with punctuation after it
        # ("Monta\\~no" or "x/y" are not: a fragment is no phrase).
        continues = len(pairs) == 1 and token[:1].isalpha() and _WORD.fullmatch(token.rstrip(_TRAILING)) is not None
        if continues:
            if not written:
                start, opens_sentence = index, sentence_start
            lowered.append(pairs[0][0])
            written.append(pairs[0][1])
        if written and (not continues or not token[-1].isalpha()):
            close()
        index += len(_WORD.findall(token))
        sentence_start = _SENTENCE_END.search(token) is not None
    if written:
        close()
    return runs
