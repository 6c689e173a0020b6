"""Topic post: the topic is taken from the post (its hashtags, else its best keyphrase of content words), is
never just the post's opening words, and the response is the real post."""

from __future__ import annotations

import re

import numpy as np
from conftest import on_one_line, post_text, read_jsonl, rows_of, run_only
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.records import Message, Thread
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.topic_post import TopicPostTask, clause_like, is_opening, prose_words
from instruct.templates import TemplateSet
from instruct.text import (STOPWORDS, ClusterStats, content_words, contains_whole_word, word_classes, written_form,
                           zipf)

TEMPLATES = TemplateSet("default")
UNFILLED = re.compile(r"\{[A-Za-z_]+\}")



def thread_of(text: str) -> Thread:
    return Thread("t1", "cluster_0", 1, (Message("u", 0, text, None),))


def context(*texts: str) -> TaskContext:
    return TaskContext(cluster="cluster_0", stats=ClusterStats.from_texts(list(texts) or ["transit parks climate"]))


def topic_of(task: TopicPostTask, row) -> list[str]:
    """The topic words, cut out of the rendered prompt with the template's text around {topic}."""
    template = next(t for t in task._templates["default"] if t.id == row.meta["template_id"])
    before, after = template.text.split("{topic}")
    assert row.instruction.startswith(before) and row.instruction.endswith(after)
    return re.split(r", | and ", row.instruction[len(before): len(row.instruction) - len(after)])


def test_hashtags_are_the_topic():
    text = "Planting day at the community garden went great #Gardening #Compost"
    task = TopicPostTask().bind("topic_post", TEMPLATES)
    row = task.build(thread_of(text), context(), Draws(np.random.default_rng(0)))
    assert topic_of(task, row) == ["#Gardening", "#Compost"]
    assert row.response == text


def test_without_hashtags_the_topic_is_a_keyphrase_not_filler_or_shouting():
    task = TopicPostTask().bind("topic_post", TEMPLATES)
    draws = Draws(np.random.default_rng(0))
    cases = {
        "Sum pundits are predicting that within 30 to 90 days that Social Security checks may be missing": "Social Security checks",
        "I want to have some creature comforts in an emergency, I don't know why": "creature comforts",
        "SAMIIII HAPPY BIRTHDAY to the best neighbour ever": "happy birthday",  # not shouted, not the opening
        "Honestly the time people spend on this is good, but the heron on the pond wins": "pond wins",
    }
    for text, topic in cases.items():
        assert task.topic(text, context().stats, draws) == [topic], text


def test_a_topic_is_a_noun_phrase_never_a_clause():
    """The best run of content words is passed over when it ends in a word that cannot be a noun ("anger
    translates") or holds one that can only be a verb or an adverb ("voices overwhelmingly dominate", "fruits
    include blackberries"); an -ing word before the head is a modifier and stays ("reasoning powers")."""
    task = TopicPostTask().bind("topic_post", TEMPLATES)
    draws = Draws(np.random.default_rng(0))
    cases = {
        "Let’s hope that this anger translates to blue votes in the next election": "blue votes",
        "A new visualization of the most-viewed political accounts shows that conservative voices overwhelmingly "
        "dominate the Twitter/X platform.": "political accounts",
        "A bramble is any rough, tangled, prickly shrub, usually in the genus Rubus. Its fruits include "
        "blackberries.": "genus Rubus",
        "in matters concerning religion and politics a man's reasoning powers are not above the monkey's":
            "reasoning powers",
    }
    for text, topic in cases.items():
        assert task.topic(text, context().stats, draws) == [topic], text
    assert clause_like([("anger", "anger"), ("translates", "translates")])
    assert clause_like([("remains", "remains"), ("steadfast", "steadfast")])
    assert not clause_like([("reasoning", "reasoning"), ("powers", "powers")])
    assert not clause_like([("Richard", "richard"), ("Jefferson", "jefferson")])  # names are not judged


def test_topic_is_never_the_opening_words():
    # The opening "Heron fog" is the best phrase of the post; a naive pick would name it.
    text = "Heron fog over the fields today"
    task = TopicPostTask(max_phrases=2).bind("topic_post", TEMPLATES)
    for seed in range(20):
        topic = task.topic(text, context().stats, Draws(np.random.default_rng(seed)))
        assert topic and all(sorted(t.lower().split()) != ["fog", "heron"] for t in topic)
        assert not is_opening(text, " ".join(topic).split())


def test_a_leading_hashtag_is_not_a_topic_by_itself():
    text = "#Transit is late again near the harbour"
    task = TopicPostTask().bind("topic_post", TEMPLATES)
    for seed in range(10):
        topic = topic_of(task, task.build(thread_of(text), context(), Draws(np.random.default_rng(seed))))
        assert topic != ["#Transit"] and not is_opening(text, topic)


def test_declines_posts_without_a_topic():
    task = TopicPostTask().bind("topic_post", TEMPLATES)
    assert task.decline_reason(thread_of("so short"), context()) == "post shorter than 5 words"
    assert task.decline_reason(thread_of("it is what it is"), context()) == "no hashtag or content word"
    # Its only phrase is its opening word: drawn, it fails and the thread goes to another task.
    only_opening = thread_of("Hurricane! it is what it is")
    assert task.decline_reason(only_opening, context()) is None
    assert task.build(only_opening, context(), Draws(np.random.default_rng(0))) == "no topic phrase"


def test_opening_skips_a_leading_handle():
    assert prose_words("@someone.bsky.social Great point about parks") == ["great", "point", "about", "parks"]
    assert is_opening("@someone.bsky.social Great point about parks", ["Great"])


@settings(max_examples=200, deadline=None)
@given(text=post_text, seed=st.integers(0, 2**32 - 1), template_set=st.sampled_from(["default", "concise"]))
def test_topic_words_occur_in_the_post_and_are_not_its_opening(text, seed, template_set):
    task = TopicPostTask().bind("topic_post", TemplateSet(template_set))
    thread = thread_of(text)
    if task.decline_reason(thread, context()) is not None:
        return
    row = task.build(thread, context(), Draws(np.random.default_rng(seed)))
    if row == "no topic phrase":  # e.g. its only content word opens it
        assert not task.phrases(text, context().stats)
        return
    assert row.response == text
    assert not UNFILLED.search(row.instruction)
    topic = topic_of(task, row)
    assert 1 <= len(topic) <= 3
    assert_topic_is_kept(task, text, topic)


def assert_topic_is_kept(task: TopicPostTask, text: str, topic: list[str]) -> None:
    """The promise of a topic: hashtags of the post, or content words of the post (no stopword, contraction,
    number, handle or link, no filler), not its opening words."""
    assert not is_opening(text, " ".join(topic).split())
    if topic[0].startswith("#"):
        assert all(t.startswith("#") and contains_whole_word(text, t) for t in topic)
        return
    allowed = {word.lower() for word in content_words(text)}
    for phrase in topic:
        assert on_one_line(text, phrase)
        for word in phrase.split():
            assert word.lower() in allowed and word.lower() not in STOPWORDS and word.isalpha()
            assert zipf(word.lower()) < task.max_zipf
            assert written_form(word) == word  # case-normalised: no SHOUTING, no gLitcH


def test_topic_post_rows_on_the_real_sample(tmp_path, shared_sample):
    run = run_only(tmp_path, "topic_post", f"source.path={shared_sample / 'released'}", "output=alpaca")
    rows = rows_of(run)
    assert rows and all(r["task"] == "topic_post" for r in rows)
    posts = real_posts(shared_sample)
    assert all(row["output"] in posts for row in rows)


def test_keyphrases_of_real_posts_never_join_two_lines(shared_sample):
    """Lists are common in real posts (a line-up, fixtures, a game sheet): each line's name is a phrase, never
    one line's last word joined to the next line's first ("Japan Neil Pierre", "Quentin Grimes Ricky")."""
    task = TopicPostTask().bind("topic_post", TEMPLATES)
    posts = real_posts(shared_sample)
    stats = ClusterStats.from_texts(sorted(posts))
    multiline = [post for post in posts if len(post.splitlines()) > 2]
    assert len(multiline) >= 40
    for post in posts:
        for phrase in task.phrases(post, stats):
            assert on_one_line(post, " ".join(phrase)), (phrase, post[:200])


def test_keyphrase_topics_of_real_posts_end_in_a_word_that_can_be_a_noun(shared_sample):
    """The best keyphrase of each real post (399 have one) ends in a word that can be a noun. Before 0.5.1, 35
    ended in a known word that cannot be: clauses and bare modifiers ("anger translates", "remains steadfast",
    "decide", "beautiful"). Now 1 does: "wise", the only candidate of "I may be wise, but I am also stupid"."""
    task = TopicPostTask().bind("topic_post", TEMPLATES)
    posts = real_posts(shared_sample)
    stats = ClusterStats.from_texts(sorted(posts))
    heads = [phrases[0][-1] for post in sorted(posts) if (phrases := task.phrases(post, stats))]
    assert len(heads) >= 300
    no_noun = [head for head in heads if head.islower() and word_classes(head) and "NOUN" not in word_classes(head)]
    assert len(no_noun) <= 0.01 * len(heads), no_noun


def real_posts(shared_sample) -> set[str]:
    """Every message text of the real sample's released files."""
    return {m["text"] for path in (shared_sample / "released").glob("*.jsonl") for record in read_jsonl(path)
            for m in record["thread"] if m.get("text")}
