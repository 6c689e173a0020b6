"""The one text normalisation every filter compares texts by: Unicode NFKC, case folded, punctuation and
symbols taken as word breaks, words split on any whitespace.

So "Café’s  NEW\tline…" and "cafe's new line" are not the same (the accent stays: NFKC keeps letters), but
"ＣＡＦＥ’S new line!!" and "cafe s new line" are: full-width letters fold to ASCII, case is folded, and the
apostrophe, like any punctuation, separates words.
"""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[\W_]+")  # punctuation, symbols, emoji, underscores and whitespace alike: word breaks


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split()


def ngrams(word_list: list[str], n: int) -> list[str]:
    """Every run of ``n`` consecutive words, joined by one space."""
    return [" ".join(word_list[i:i + n]) for i in range(len(word_list) - n + 1)]
