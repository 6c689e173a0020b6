"""Properties of the three original tasks that a trainer relies on (hypothesis over generated posts)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from conftest import post_text
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.records import Message, Thread, row_meta
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.completion import CompletionTask
from instruct.tasks.keyword_post import KeywordPostTask, weighted_sample
from instruct.tasks.needle import NeedleTask, ordinal
from instruct.templates import TemplateSet
from instruct.text import STOPWORDS, ClusterStats, contains_whole_word, content_words, written_form, zipf

TEMPLATES = TemplateSet("default")
UNFILLED = re.compile(r"(?<!\{)\{[A-Za-z_]+\}(?!\})")



def thread_of(*texts: str, thread_id: str = "t1", users=None) -> Thread:
    users = users or [f"u{i % 3}" for i in range(len(texts))]
    return Thread(thread_id, "cluster_0", 1, tuple(Message(u, i, t, None) for i, (u, t) in enumerate(zip(users, texts))))


def context(**kwargs) -> TaskContext:
    return TaskContext(cluster="cluster_0", stats=ClusterStats.from_texts(["transit parks climate"] * 3), **kwargs)


@settings(max_examples=200, deadline=None)
@given(text=post_text, seed=st.integers(0, 2**32 - 1))
def test_completion_beginning_plus_response_is_the_post(text, seed):
    task = CompletionTask().bind("completion", TEMPLATES)
    thread = thread_of(text)
    if task.decline_reason(thread, context()) is not None:
        assert len(text.split()) < 10
        return
    row = task.build(thread, context(), Draws(np.random.default_rng(seed)))
    beginning = text[: len(text)].split()[: row.meta["split_point"]]
    assert beginning + row.response.split() == text.split()
    assert 3 <= row.meta["split_point"] <= len(text.split()) - 3
    assert " ".join(beginning) in " ".join(row.instruction.split())
    assert not UNFILLED.search(row.instruction)


@settings(max_examples=200, deadline=None)
@given(text=post_text, seed=st.integers(0, 2**32 - 1))
def test_keywords_are_whole_content_words_of_the_response(text, seed):
    task = KeywordPostTask().bind("keyword_post", TEMPLATES)
    thread = thread_of(text)
    if task.decline_reason(thread, context()) is not None:
        return
    row = task.build(thread, context(), Draws(np.random.default_rng(seed)))
    if row == "only filler words":
        assert not task.candidates(text)[0]
        return
    assert row.response == text
    keywords = keywords_of(task, row)
    allowed = {word.lower() for word in content_words(text)}
    for keyword in keywords:
        assert contains_whole_word(text, keyword) and keyword.lower() in allowed
        assert keyword.lower() not in STOPWORDS and keyword.isalpha() and "'" not in keyword
        assert zipf(keyword.lower()) < task.max_zipf  # no filler
        assert written_form(keyword) == keyword  # case-normalised: no SHOUTING, no gLitcH
    assert 1 <= len(keywords) <= 5
    # One keyword is asked for in the singular, several in the plural.
    assert row.meta["variant"] == ("one" if len(keywords) == 1 else "several")
    assert not UNFILLED.search(row.instruction)


def keywords_of(task: KeywordPostTask, row) -> list[str]:
    """The keywords, cut out of the rendered prompt using its template's text around the placeholder."""
    variant = row.meta["variant"]
    template = next(t for t in task._templates[variant] if t.id == row.meta["template_id"])
    before, after = template.text.split("{keyword}" if variant == "one" else "{keywords}")
    assert row.instruction.startswith(before) and row.instruction.endswith(after)
    return row.instruction[len(before): len(row.instruction) - len(after)].split(", ")


def test_keywords_skip_filler_shouting_and_contractions():
    task = KeywordPostTask(max_keywords=5).bind("keyword_post", TEMPLATES)
    text = "The TIME people spend on gLitcH KeaNu memes, I don’t know, it’s wild: heron sightings"
    assert task.candidates(text)[0] == ["spend", "glitch", "keanu", "memes", "wild", "heron", "sightings"]


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(post_text, min_size=1, max_size=12), feed=st.lists(post_text, min_size=0, max_size=25),
       seed=st.integers(0, 2**32 - 1))
def test_every_needle_answer_occurs_exactly_once_in_its_haystack(texts, feed, seed):
    task = NeedleTask(min_messages=2).bind("needle", TEMPLATES)
    earlier = [thread_of(t, thread_id=f"e{i}", users=[f"e{i % 4}"]) for i, t in enumerate(feed)]
    ctx = context(earlier=lambda: earlier)
    thread = thread_of(*texts)
    row = task.build(thread, ctx, Draws(np.random.default_rng(seed)))
    if isinstance(row, str):
        return
    haystack = task.haystack(thread, ctx)
    assert haystack.text in row.instruction
    assert not UNFILLED.search(row.instruction.replace(haystack.text, ""))
    variant = row.meta["variant"]
    answers = row.response.split("\n") if variant == "multi" else [row.response]
    if variant == "who_wrote":
        assert re.fullmatch(r"User_\d+", row.response)
        snippet = re.search(r"\"(.+?)\"", row.instruction.replace(haystack.text, ""), re.DOTALL).group(1)
        assert haystack.text.count(snippet) == 1
    else:
        for answer in answers:
            assert haystack.text.count(answer) == 1
    assert all(0.0 <= d <= 1.0 for d in row.meta["needle_depths"])
    assert thread.id in row.meta["thread_ids"]
    assert set(row.meta["thread_ids"]) <= {thread.id} | {t.id for t in earlier}


def test_nth_message_answer_is_that_message():
    texts = [f"message number {i} about parks" for i in range(8)]
    task = NeedleTask(variants=["nth_message"]).bind("needle", TEMPLATES)
    thread = thread_of(*texts)
    for seed in range(20):
        row = task.build(thread, context(), Draws(np.random.default_rng(seed)))
        n = texts.index(row.response) + 1
        assert ordinal(n) in row.instruction
        assert row.meta["needle_depths"] == [round((n - 1) / 7, 4)]


def test_needle_depth_spreads_over_the_haystack():
    texts = [f"distinct message {i} on transit" for i in range(30)]
    task = NeedleTask(variants=["nth_message"]).bind("needle", TEMPLATES)
    depths = [task.build(thread_of(*texts), context(), Draws(np.random.default_rng(s))).meta["needle_depths"][0]
              for s in range(300)]
    assert np.histogram(depths, bins=5, range=(0, 1))[0].min() > 30


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_keywords_are_drawn_by_weight_without_replacement():
    draws, firsts, seconds = Draws(np.random.default_rng(3)), Counter(), Counter()
    for _ in range(20_000):
        picked = weighted_sample("abc", [1.0, 2.0, 5.0], 3, draws)
        assert sorted(picked) == ["a", "b", "c"]
        firsts[picked[0]] += 1
        seconds[picked[1]] += picked[0] == "c"
    assert all(abs(firsts[k] / 20_000 - w / 8) < 0.015 for k, w in zip("abc", [1, 2, 5]))
    # After "c" is gone, "b" is twice as likely as "a".
    assert abs(seconds["b"] / (seconds["a"] + seconds["b"]) - 2 / 3) < 0.02


def test_weighted_sample_takes_every_item_at_most_once():
    draws = Draws(np.random.default_rng(5))
    for count in range(5):
        picked = weighted_sample("abcd", [9.0, 1.0, 1.0, 1.0], count, draws)
        assert len(picked) == len(set(picked)) == count
    with pytest.raises(ValueError):
        weighted_sample("ab", [1.0, 1.0], 3, draws)


@pytest.mark.parametrize("extra", [{}, {"thread_ids": ["t0", "t1"], "needle_depths": [0.5], "split_point": 4}])
def test_row_lineage_is_row_meta(extra):
    task = CompletionTask().bind("completion", TEMPLATES)
    ctx = context(split="validation")
    row = task.row(thread_of("a post"), ctx, instruction="i", response="r", template_id="t", variant="v", **extra)
    expected = row_meta(task="completion", variant="v", template_id="t", cluster="cluster_0", thread_id="t1",
                        line=1, split="validation", source="blueprint", **extra)
    assert list(row.meta.items()) == list(expected.items())  # same keys, same order, same values
    assert row.meta is not task.row(thread_of("a post"), ctx, instruction="i", response="r", template_id="t").meta
