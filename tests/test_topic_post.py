"""Topic post: the topic is taken from the post (its hashtags, else its rarest content words), is never
just the post's opening words, and the response is the real post."""

from __future__ import annotations

import re

import numpy as np
from conftest import post_text, read_jsonl, rows_of, run_only
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.records import Message, Thread
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.topic_post import TopicPostTask, is_opening, prose_words
from instruct.templates import TemplateSet
from instruct.text import STOPWORDS, ClusterStats, contains_whole_word

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


def test_without_hashtags_the_rarest_words_are_the_topic():
    # In this cluster everyone talks about transit; "heron" and "fog" are what this post is specifically about.
    cluster = ["transit delays again", "transit is late", "more transit please", "transit morning", "walk"]
    text = "Morning transit walk, foggy fields, one heron"
    task = TopicPostTask(max_words=1).bind("topic_post", TEMPLATES)
    topics = {topic_of(task, task.build(thread_of(text), context(*cluster), Draws(np.random.default_rng(s))))[0]
              for s in range(20)}
    assert topics <= {"foggy", "fields", "heron"}


def test_topic_is_never_the_opening_words():
    # Every content word is rare, and the first two are the rarest: a naive pick would be "Heron fog".
    cluster = ["fields everywhere", "fields again", "more fields", "fields today"]
    text = "Heron fog over the fields"
    task = TopicPostTask(max_words=2).bind("topic_post", TEMPLATES)
    for seed in range(40):
        topic = topic_of(task, task.build(thread_of(text), context(*cluster), Draws(np.random.default_rng(seed))))
        assert sorted(w.lower() for w in topic) != ["fog", "heron"]
        assert topic != ["Heron"]


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
    assert task.decline_reason(thread_of("Hurricane! it is what it is"), context()) == \
        "only topic word is the post's first word"


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
    assert row.response == text
    assert not UNFILLED.search(row.instruction)
    topic = topic_of(task, row)
    assert 1 <= len(topic) <= 3
    assert not is_opening(text, topic)
    for topic_word in topic:
        assert contains_whole_word(text, topic_word)
        assert topic_word.lstrip("#").lower() not in STOPWORDS


def test_topic_post_rows_on_the_real_sample(tmp_path, shared_sample):
    run = run_only(tmp_path, "topic_post", f"source.path={shared_sample / 'released'}", "output=alpaca")
    rows = rows_of(run)
    assert rows and all(r["task"] == "topic_post" for r in rows)
    posts = set()
    for path in (shared_sample / "released").glob("*.jsonl"):
        for record in read_jsonl(path):
            posts.update(m["text"] for m in record["thread"] if m.get("text"))
    assert all(row["output"] in posts for row in rows)
