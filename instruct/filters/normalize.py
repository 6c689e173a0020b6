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
_PLANS: dict[bytes, tuple[bool, tuple[bytes, ...]]] = {}  # see _plan
_PLANS_REMEMBERED = 4096


def words_by_definition(text: str) -> list[str]:
    """The normalised words of ``text``, by the definition (the reference ``words`` is tested against)."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split()


def words(text: str) -> list[str]:
    """The normalised words of ``text`` (the same as ``words_by_definition``)."""
    if text.isascii():
        return text.encode().translate(_ASCII_FOLD).decode().split()
    return _folded(text).decode().split()


def joined(text: str) -> bytes:
    """The normalised words of ``text`` joined by single spaces, UTF-8 encoded: ``" ".join(words(text))``."""
    if text.isascii():
        return b" ".join(text.encode().translate(_ASCII_FOLD).split())
    return b" ".join(_folded(text).split())


def _folded(text: str) -> bytes:
    """A non-ASCII text NFKC-normalised and case folded, every non-word character a space, UTF-8 encoded.

    Its ASCII characters go through the table (a UTF-8 sequence has no ASCII byte, so the table never touches
    part of a character), and each non-word non-ASCII character is replaced by a space (UTF-8 never finds one
    character's bytes inside another's). Case folding maps character by character, so a text whose non-ASCII
    characters all fold to themselves (emoji, accented small letters) needs only its ASCII letters lowered,
    which the table does."""
    normal = unicodedata.normalize("NFKC", text)
    encoded = normal.encode()
    folds, breaks = _plan(encoded.translate(None, _ASCII))
    if folds:
        encoded = normal.casefold().encode()
        breaks = _plan(encoded.translate(None, _ASCII))[1]
    encoded = encoded.translate(_ASCII_FOLD)
    for char in breaks:
        encoded = encoded.replace(char, b" ")
    return encoded


def _plan(others: bytes) -> tuple[bool, tuple[bytes, ...]]:
    """For a text's non-ASCII bytes: whether one of its characters changes when case folded, and the UTF-8 of
    its non-word characters (the expression's word characters are exactly those ``str.isalnum`` accepts,
    besides the underscore). Remembered by the bytes: posts repeat a few emoji."""
    plan = _PLANS.get(others)
    if plan is None:
        chars = set(others.decode())
        plan = (any(char.casefold() != char for char in chars),
                tuple(sorted(char.encode() for char in chars if not char.isalnum())))
        if len(_PLANS) < _PLANS_REMEMBERED:
            _PLANS[others] = plan
    return plan


def ngrams(word_list: list[str], n: int) -> list[str]:
    """Every run of ``n`` consecutive words, joined by one space."""
    return [" ".join(word_list[i:i + n]) for i in range(len(word_list) - n + 1)]
