"""The one text normalisation every filter compares texts by: Unicode NFKC, case folded, punctuation and
symbols taken as word breaks, words split on any whitespace.

So "Café’s  NEW\tline…" and "cafe's new line" are not the same (the accent stays: NFKC keeps letters), but
"ＣＡＦＥ’S new line!!" and "cafe s new line" are: full-width letters fold to ASCII, case is folded, and the
apostrophe, like any punctuation, separates words.

``words_by_definition`` is that definition; ``words`` and ``joined`` give the same words by a faster route,
which the tests check against it. ASCII text is its own NFKC form and ``lower`` is its case fold, and of the
ASCII characters only letters and digits are word characters, so one byte translation table does all three
steps. Other text is NFKC-normalised and case folded first; its ASCII characters then go through the same table,
and its few distinct non-ASCII characters are judged one by one. No word character is whitespace to
``str.split``, so splitting the result gives the same words as the definition.
"""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[\W_]+")  # punctuation, symbols, emoji, underscores and whitespace alike: word breaks
# ASCII letters lowered, digits kept, every other ASCII byte a space; bytes of UTF-8 sequences (>= 128) kept.
_ASCII_FOLD = bytes(ord(chr(c).lower()) if chr(c).isalnum() else 0x20 for c in range(128)) + bytes(range(128, 256))
_ASCII = bytes(range(128))


def words_by_definition(text: str) -> list[str]:
    """The normalised words of ``text``, by the definition (the reference ``words`` is tested against)."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split()


def words(text: str) -> list[str]:
    """The normalised words of ``text`` (the same as ``words_by_definition``)."""
    if text.isascii():
        return text.encode().translate(_ASCII_FOLD).decode().split()
    return _folded(text).split()


def joined(text: str) -> bytes:
    """The normalised words of ``text`` joined by single spaces, UTF-8 encoded: ``" ".join(words(text))``."""
    if text.isascii():
        return b" ".join(text.encode().translate(_ASCII_FOLD).split())
    return " ".join(_folded(text).split()).encode()


def _folded(text: str) -> str:
    """A non-ASCII text NFKC-normalised and case folded, every non-word character a space. Its ASCII
    characters go through the table (a UTF-8 sequence has no ASCII byte, so the table never touches part of a
    character); each distinct non-ASCII character left is then judged once: the expression's word characters
    are exactly those ``str.isalnum`` accepts, besides the underscore."""
    encoded = unicodedata.normalize("NFKC", text).casefold().encode().translate(_ASCII_FOLD)
    folded = encoded.decode()
    for char in set(encoded.translate(None, _ASCII).decode()):
        if not char.isalnum():
            folded = folded.replace(char, " ")
    return folded


def ngrams(word_list: list[str], n: int) -> list[str]:
    """Every run of ``n`` consecutive words, joined by one space."""
    return [" ".join(word_list[i:i + n]) for i in range(len(word_list) - n + 1)]
