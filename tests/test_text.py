"""Word statistics: the token-by-token content-word reading and the shared post analysis give exactly what the
plain reading of the whole text (the original definition) gives."""

from __future__ import annotations

import math

import orjson

from conftest import post_text
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct import text
from instruct.text import (
    _ALPHA_WORD,
    _WORD,
    NOT_PROSE,
    STOPWORDS,
    ClusterStats,
    PostWords,
    content_words,
    phrase_runs,
    post_words,
    written_form,
)


def plain_content_words(text: str) -> list[str]:
    """The definition: word tokens of the text without handles and links, letters only (a possessive is its
    noun, any other apostrophe word a contraction), 3+ characters, no stopword, first spelling of each
    lowercased word, case-normalised, in order."""
    seen: dict[str, str] = {}
    for word in _WORD.findall(NOT_PROSE.sub(" ", text)):
        if not word.isalpha():
            if not _ALPHA_WORD.fullmatch(word) or word[-2:].lower() not in ("'s", "’s") or not word[:-2].isalpha():
                continue
            word = word[:-2]
        if len(word) >= 3 and word.lower() not in STOPWORDS:
            seen.setdefault(word.lower(), written_form(word))
    return list(seen.values())


# Generated posts plus tokens that sit on the edges of the patterns: apostrophes, underscores, numeric letters,
# links and handles glued to punctuation.
tricky = st.sampled_from(["www..", "awww..", "http://.", "(@bob)", "_abc", "abc_", "x''abc", "don't", "Don’t",
                          "Trump’s", "Canada's", "I’ve", "y'all", "SHOUTING", "gLitcH", "NASA", "Keanu",
                          "“quoted”", "…and", "a'b", "½abc", "abc²", "(awww.)", "foo-bar", "a/b/c", "end.Start",
                          "<URL>.", "x@y.z", "http://a.b/c?d", "ÉCOLE", "école", "Ünïcode"])
mixed_text = st.lists(st.one_of(post_text, tricky), min_size=1, max_size=8).map(" ".join)


@settings(max_examples=500, deadline=None)
@given(text=mixed_text)
def test_content_words_follow_the_plain_definition(text):
    expected = plain_content_words(text)
    assert content_words(text) == expected
    analysis = PostWords(text)
    assert analysis.has_content_words() == bool(expected)
    assert analysis.count == len(text.split())
    assert analysis.content_lower == tuple(word.lower() for word in expected)


def test_post_words_is_shared_and_bounded():
    assert post_words("Transit parks climate") is post_words("Transit parks climate")
    for i in range(1000):
        post_words(f"post number {i}")
    assert post_words.cache_info().currsize <= post_words.cache_info().maxsize


@given(texts=st.lists(mixed_text, min_size=0, max_size=10), word=st.sampled_from(["transit", "Transit", "zzz"]))
def test_idf_is_the_smoothed_formula(texts, word):
    stats = ClusterStats.from_texts(texts)
    documents = sum(1 for _ in texts)
    frequency = sum(word.lower() in {w.lower() for w in plain_content_words(t)} for t in texts)
    expected = math.log((1 + documents) / (1 + frequency)) + 1.0
    assert math.isclose(stats.idf(word), expected)
    assert stats.idfs([word.lower()]) == [stats.idf(word)]


def test_token_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(text, "_TOKEN_CACHE", 50)
    text._TOKEN_CONTENT_WORDS.clear()
    for i in range(500):
        assert content_words(f"Zebra{i} quagga{chr(97 + i % 26)}x") == ["quagga" + chr(97 + i % 26) + "x"]
    assert len(text._TOKEN_CONTENT_WORDS) <= 50
    text._TOKEN_CONTENT_WORDS.clear()


def test_curly_apostrophes_read_as_straight_ones():
    assert content_words("I don’t think it’s what I’ve seen") == content_words("I don't think it's what I've seen")
    assert not {"don’t", "it’s", "I’ve"} & set(content_words("I don’t think it’s what I’ve seen"))
    assert content_words("Trump’s tariffs and Canada's reply") == ["Trump", "tariffs", "Canada", "reply"]


def test_stopwords_come_from_the_maintained_list_plus_social_filler():
    from stop_words import get_stop_words

    assert set(w.replace("’", "'") for w in get_stop_words("en")) <= STOPWORDS
    assert {"lol", "gonna", "https", "www"} <= STOPWORDS


def test_case_is_normalised_but_names_and_acronyms_keep_theirs():
    assert [written_form(w) for w in ("BIRTHDAY", "SAMIIII", "gLitcH", "KeaNu", "Keanu", "NASA", "GPs", "parks")] == \
        ["birthday", "samiiii", "glitch", "keanu", "Keanu", "NASA", "GPs", "parks"]


def test_phrase_runs_stop_at_stopwords_punctuation_and_fragments():
    runs = [written for written, _, _ in phrase_runs(
        "Trade talks with Canada stalled. Social Security checks, says the foreign agent Radanovi\\'c today")]
    assert runs == [("trade", "talks"), ("Canada", "stalled"), ("Social", "Security", "checks"),
                    ("foreign", "agent")]


def test_phrase_runs_stop_at_line_breaks_and_a_line_starts_a_sentence():
    post = ("Sixers starters vs. Wizards:\n\nQuentin Grimes\nRicky Council IV\r\n"
            "Justin Edwards\u2028Table Tennis - Indoor\nTrade talks with Canada")
    runs = [written for written, _, _ in phrase_runs(post)]
    assert runs == [("Sixers", "starters"), ("Wizards",), ("Quentin", "Grimes"), ("Ricky", "Council"),
                    ("Justin", "Edwards"), ("Table", "Tennis"), ("Indoor",), ("trade", "talks"), ("Canada",)]


def test_the_zipf_table_kept_between_runs_is_wordfreqs_and_a_cut_copy_is_built_again(tmp_path, monkeypatch):
    """Runs read wordfreq's Zipf table from the user's cache folder instead of importing wordfreq: the same
    values exactly, and a damaged copy is never trusted."""
    import sys

    from wordfreq import get_frequency_dict

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = {word: math.log10(frequency) + 9.0 for word, frequency in get_frequency_dict("en", wordlist="small").items()}
    assert text._zipf_table() == expected  # built from wordfreq, and kept
    kept = next((tmp_path / "instruct").glob("wordfreq-*-en-small-zipf.json"))

    with monkeypatch.context() as without_wordfreq:
        without_wordfreq.setitem(sys.modules, "wordfreq", None)  # importing it now fails
        assert text._zipf_table() == expected  # read from the kept copy, every float as it was

    kept.write_bytes(kept.read_bytes()[:1000])
    assert text._zipf_table() == expected  # a cut copy reads as nothing: built again …
    assert orjson.loads(kept.read_bytes()) == expected  # … and kept whole
