"""The filters' text normalisation (instruct/filters/normalize.py): the fast ``words`` and ``joined`` give
exactly the words of the definition (NFKC, case folded, non-word characters as breaks), for any text."""

from __future__ import annotations

import re
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.filters import normalize
from instruct.parsing import Reject, parse_thread

# Characters that stress each step: ASCII punctuation and digits, NFKC compatibility forms (full-width, ligatures,
# superscripts, the Kelvin sign), case folds that change length (ß, İ), combining marks, emoji with variation
# selectors, non-ASCII spaces and word characters of other scripts.
TRICKY = "aZ09_ -'’\t\n\x0b\x1c\x85\xa0ＣＡＦＥ！ﬁ²³½ẞßİıΣσςKÅé\u0301😅🗳\ufe0f\u200d\u2028\u3000日本語١٢٣"


def _same(text: str) -> None:
    expected = normalize.words_by_definition(text)
    assert normalize.words(text) == expected
    assert normalize.joined(text) == " ".join(expected).encode()


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=TRICKY), st.text(alphabet=st.characters(max_codepoint=127))))
def test_words_equal_the_definition_for_any_text(text):
    _same(text)


def test_words_equal_the_definition_on_every_text_of_the_real_samples(shared_lines):
    texts = 0
    for _, key, line, raw in shared_lines:
        try:
            thread = parse_thread(raw, cluster=key, line=line + 1)
        except Reject:
            continue
        for message in thread.messages:
            if message.text:
                _same(message.text)
                texts += 1
    assert texts >= 800


def test_the_word_characters_are_those_isalnum_accepts_and_none_is_whitespace():
    """What the fast path relies on, over every code point."""
    word = re.compile(r"[^\W_]")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(word.match(char)) == char.isalnum(), hex(code)
        if char.isalnum():
            assert not char.isspace(), hex(code)
