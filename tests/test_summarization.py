"""Summarization: offline, the prompt asks for the k most representative messages quoted verbatim, and the
response is exactly that — real messages of the prompt, as many as it asks, in time order, attributed to the
right ``User_k``; several threads are shown as a feed of separate posts, never as one discussion."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.records import Message, Thread
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.summarization import STRETCH_TAKEN, TIED, TOO_FEW, SummarizationTask, nothing_shared, one_line
from instruct.templates import ONE_THREAD, TemplateSet
from instruct.text import ClusterStats

TEMPLATES = TemplateSet("default")
UNFILLED = re.compile(r"\{[A-Za-z_]+\}")

word = st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9),
                 st.sampled_from(["transit", "parks", "climate", "<URL>", "#Vote", "the", "it's", "🙂", "2025"]))
message_text = st.lists(word, min_size=1, max_size=25).map(" ".join)


def thread_of(texts: list[str], users: list[str], thread_id: str = "t", line: int = 1) -> Thread:
    return Thread(thread_id, "cluster_0", line,
                  tuple(Message(user, i, text, None) for i, (user, text) in enumerate(zip(users, texts))))


def context(task: SummarizationTask, chunk: list[Thread] = (), texts: list[str] = ()) -> TaskContext:
    """The context of a chunk of threads (all train), as the worker hands it to the task before offering them."""
    stats = ClusterStats.from_texts(list(texts) or ["transit parks climate", "parks"])
    ctx = TaskContext(cluster="cluster_0", stats=stats, chunk=[(thread, "train") for thread in chunk])
    task.begin_chunk(ctx)
    return ctx


def transcript_and_summary(task: SummarizationTask, row) -> tuple[list[str], list[str]]:
    """The message lines of the prompt (cut out with the template's text) and the response lines. The cut only
    fits if the template's {count} is the number of response lines: the prompt asks for as many as it gets."""
    variant = row.meta["variant"]
    template = next(t for t in task._templates[variant] if t.id == row.meta["template_id"])
    placeholder = "{feed}" if variant.startswith("feed") else "{conversation}"
    before, after = template.text.split(placeholder)
    points = row.response.count("\n") + 1
    before, after = before.replace("{count}", str(points)), after.replace("{count}", str(points))
    assert row.instruction.startswith(before) and row.instruction.endswith(after)
    shown = row.instruction[len(before): len(row.instruction) - len(after)]
    if variant.startswith("feed"):  # "Post 1:\nUser_0: …\n\nPost 2:\n…"
        blocks = shown.split("\n\n")
        assert [block.split("\n", 1)[0] for block in blocks] == [f"Post {n}:" for n in range(1, len(blocks) + 1)]
        return [line for block in blocks for line in block.split("\n")[1:]], row.response.split("\n")
    return shown.split("\n"), row.response.split("\n")


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    remaining = iter(whole)
    return all(line in remaining for line in part)


def test_summary_is_the_central_messages_in_time_order_with_their_authors():
    texts = [
        "The new tram line opens downtown next week.",
        "Great, the tram line downtown was overdue.",
        "My cat sleeps on the keyboard again.",
        "Tram line tickets downtown are cheaper than the bus.",
        "Anyone seen my umbrella?",
        "The tram line downtown will run every five minutes.",
    ]
    users = ["ann", "bob", "cy", "ann", "dee", "bob"]
    task = SummarizationTask(max_points=3).bind("summarization", TEMPLATES)
    row = task.build(thread_of(texts, users), context(task, texts=texts), Draws(np.random.default_rng(0)))
    lines, summary = transcript_and_summary(task, row)
    assert lines == [f"User_{k}: {t}" for k, t in zip([0, 1, 2, 0, 3, 1], texts)]
    # The three tram messages are central; the cat and the umbrella are not.
    picked = [lines.index(line) for line in summary]
    assert len(picked) == 3 and picked == sorted(picked)
    assert {2, 4}.isdisjoint(picked)


def test_short_thread_is_shown_in_its_stretch_of_the_feed_never_as_one_discussion():
    earlier = [thread_of([f"earlier thread {i} about parks", f"a reply on parks {i}"], [f"e{i}", f"f{i}"],
                         thread_id=f"e{i}", line=i + 1) for i in range(5)]
    thread = thread_of(["the thread itself about transit"], ["me"], thread_id="now", line=9)
    task = SummarizationTask(max_messages=6).bind("summarization", TEMPLATES)
    for seed in range(10):
        row = task.build(thread, context(task, earlier + [thread]), Draws(np.random.default_rng(seed)))
        lines, _ = transcript_and_summary(task, row)
        # The budget of 6 messages packs three whole threads (2 + 2 + 2), then two and this one (2 + 2 + 1).
        assert row.meta["thread_ids"] == ["e3", "e4", "now"] and row.meta["variant"] == "feed"
        assert lines[-1].endswith(": the thread itself about transit") and len(lines) == 5
        assert "Post 3:\n" in row.instruction and "feed" in row.instruction.lower()
        wording = row.instruction
        for line in lines:  # the template's own words, not the messages'
            wording = wording.replace(line, "")
        assert not [phrase for phrase in ONE_THREAD if phrase in wording.lower()]


def test_a_stretch_of_the_feed_makes_one_row_whichever_of_its_threads_is_drawn():
    # Feeds that overlapped would show the same posts in several rows, and the same answer with them.
    posts = ["The tram downtown is late.", "Volcano erupted overnight.", "Downtown tram late again!",
             "Museum reopens Saturday morning.", "Parks lights.", "Trade talks stalled."]
    chunk = [thread_of([text], [f"u{i}"], thread_id=f"t{i}", line=i + 1) for i, text in enumerate(posts)]
    answers = set()
    for drawn in range(4):
        task = SummarizationTask(max_messages=4).bind("summarization", TEMPLATES)
        ctx = context(task, chunk, texts=posts)
        assert task.decline_reason(chunk[drawn], ctx) is None
        row = task.build(chunk[drawn], ctx, Draws(np.random.default_rng(drawn)))
        # The stretch is the first four posts whichever of them is drawn, so is the answer: the tram posts.
        assert row.meta["thread_ids"] == ["t0", "t1", "t2", "t3"] and row.meta["thread_id"] == f"t{drawn}"
        answers.add(row.response)
        assert [task.decline_reason(thread, ctx) for thread in chunk] == [STRETCH_TAKEN] * 4 + [
            "conversation shorter than 3 messages"] * 2
    assert answers == {"User_0: The tram downtown is late.\nUser_2: Downtown tram late again!"}


def test_a_stretch_holds_consecutive_short_threads_of_one_split():
    chunk = [thread_of(["a on parks"], ["a"], thread_id="a", line=1),
             thread_of(["b on parks"], ["b"], thread_id="b", line=2),
             thread_of(["one", "two", "three"], ["c", "d", "c"], thread_id="conversation", line=3),
             thread_of(["e on parks"], ["e"], thread_id="e", line=4),
             thread_of([None], ["f"], thread_id="no text", line=5),
             thread_of(["g on parks"], ["g"], thread_id="validation g", line=6),
             thread_of(["h on parks"], ["h"], thread_id="h", line=7)]
    task = SummarizationTask().bind("summarization", TEMPLATES)
    stretches = task.stretches([(thread, "validation" if thread.id.startswith("validation") else "train")
                                for thread in chunk])
    # A conversation of its own ends a stretch; a thread without text is not shown; the other split's threads
    # make stretches of their own.
    assert {line: [t.id for t in stretch.threads] for line, stretch in stretches.items()} == {
        1: ["a", "b"], 2: ["a", "b"], 4: ["e", "h"], 6: ["validation g"], 7: ["e", "h"]}


def test_a_thread_long_enough_stands_alone():
    thread = thread_of(["one on parks", "two on parks", "three on transit"], ["a", "b", "a"], thread_id="own", line=2)
    earlier = [thread_of(["older", "reply"], ["x", "y"], thread_id="old")]
    task = SummarizationTask().bind("summarization", TEMPLATES)
    row = task.build(thread, context(task, [earlier[0], thread]), Draws(np.random.default_rng(2)))
    assert row.meta["thread_ids"] == ["own"] and row.meta["variant"] == "thread"
    assert len(row.response.split("\n")) == 2  # ceil(3 / 2): a summary is shorter than the conversation
    assert "verbatim" in row.instruction.lower() or "word for word" in row.instruction.lower() \
        or "exactly as written" in row.instruction.lower()


def test_without_the_feed_only_threads_of_their_own_are_used():
    chunk = [thread_of(["older on parks", "reply on parks"], ["x", "y"], thread_id="old"),
             thread_of(["just me on parks"], ["a"], line=2)]
    task = SummarizationTask(feed=False).bind("summarization", TEMPLATES)
    assert task.decline_reason(chunk[1], context(task, chunk)) == "conversation shorter than 3 messages"


@pytest.mark.parametrize("own", [["one on parks", "two on parks", "three on transit"], ["me on transit"]])
def test_an_llm_writes_abstractive_summaries_with_their_own_templates(own):
    chunk = [thread_of(["older on parks", "reply on parks"], ["x", "y"], thread_id="old"),
             thread_of(own, ["a", "b", "c"][: len(own)], line=2)]
    task = SummarizationTask().bind("summarization", TEMPLATES)
    task.llm_answers = True
    row = task.build(chunk[1], context(task, chunk), Draws(np.random.default_rng(0)))
    assert row.meta["variant"] == ("thread_llm" if len(own) == 3 else "feed_llm") and row.response == ""
    assert "verbatim" not in row.instruction.lower()


def test_declines_when_no_conversation_of_three_messages_can_be_made():
    task = SummarizationTask().bind("summarization", TEMPLATES)
    assert task.decline_reason(thread_of([None], ["a"]), context(task)) == "no text message"
    short = thread_of(["just me", "and you"], ["a", "b"])
    assert task.decline_reason(short, context(task, [short])) == \
        "conversation shorter than 3 messages"


def test_multi_line_messages_stay_on_one_transcript_line():
    texts = ["first line\nsecond line about parks", "a reply on parks", "another\n\nreply on transit"]
    task = SummarizationTask().bind("summarization", TEMPLATES)
    row = task.build(thread_of(texts, ["a", "b", "c"]), context(task), Draws(np.random.default_rng(3)))
    lines, summary = transcript_and_summary(task, row)
    assert lines == [f"User_{i}: {one_line(t)}" for i, t in enumerate(texts)]
    assert set(summary) <= set(lines)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        SummarizationTask(min_messages=2)
    with pytest.raises(ValueError):
        SummarizationTask(max_points=1)  # an extractive summary of one message is no summary


@settings(max_examples=150, deadline=None)
@given(own=st.lists(message_text, min_size=1, max_size=10), feed=st.lists(st.lists(message_text, min_size=1, max_size=3),
       max_size=8), users=st.lists(st.sampled_from("abcd"), min_size=10, max_size=10),
       max_points=st.integers(2, 5), seed=st.integers(0, 2**32 - 1), template_set=st.sampled_from(["default", "concise"]))
def test_every_summary_line_is_a_conversation_line_in_order_and_nothing_is_unfilled(own, feed, users, max_points, seed,
                                                                                   template_set):
    earlier = [thread_of(texts, [f"e{i}"] * len(texts), thread_id=f"e{i}", line=i + 1) for i, texts in enumerate(feed)]
    thread = thread_of(own, users[: len(own)], thread_id="now", line=99)
    task = SummarizationTask(max_points=max_points).bind("summarization", TemplateSet(template_set))
    ctx = context(task, earlier + [thread], texts=own)
    if task.decline_reason(thread, ctx) is not None:
        assert len(own) < 3  # a thread of three messages is a conversation by itself
        return
    row = task.build(thread, ctx, Draws(np.random.default_rng(seed)))
    if isinstance(row, str):
        assert row in ("no content words in the conversation", TOO_FEW, TIED,
                       nothing_shared(task.feed_min_shared, task.feed_rare_zipf))
        return
    assert not UNFILLED.search(row.instruction) and not UNFILLED.search(row.response)
    lines, summary = transcript_and_summary(task, row)
    assert is_subsequence(summary, lines) and len(set(summary)) == len(summary)
    assert 2 <= len(summary) <= min(max_points, (len(lines) + 1) // 2)
    assert row.meta["variant"] == ("thread" if len(row.meta["thread_ids"]) == 1 else "feed")
    # Labels are by first appearance: User_0 opens the conversation, each new user takes the next number.
    seen = []
    for line in lines:
        label = line.split(":", 1)[0]
        if label not in seen:
            assert label == f"User_{len(seen)}"
            seen.append(label)
    assert "now" in row.meta["thread_ids"] and set(row.meta["thread_ids"]) <= {"now"} | {t.id for t in earlier}


UNRELATED = ["Trade talks stalled again over agricultural tariffs.", "The river flooded the park trail again.",
             "The restored wetland upstream should help next year.",
             "Construction crews are laying track this week 🚄",
             "The city council finally approved the new bike lanes downtown.", "Museum reopens Saturday morning.",
             "Volcano erupted overnight."]


@pytest.mark.parametrize("count", [3, 4, 5, 7])
def test_unrelated_messages_of_a_conversation_tie_and_the_earliest_win(count):
    # Messages that share no word are all equally central; in a conversation the summary then takes the
    # first ones, which the others answer, not whichever rounding noise favours.
    texts = UNRELATED[:count]
    task = SummarizationTask(max_points=3).bind("summarization", TEMPLATES)
    row = task.build(thread_of(texts, [f"u{i}" for i in range(count)]), context(task, texts=texts),
                     Draws(np.random.default_rng(0)))
    lines, summary = transcript_and_summary(task, row)
    assert summary == lines[: min(3, (count + 1) // 2)]


def summarize_feed(texts: list[str], max_points: int = 3, **options):
    """A feed of one-message threads, the last one the thread drawn: the row's (lines, summary), or why none."""
    earlier = [thread_of([text], [f"e{i}"], thread_id=f"e{i}", line=i + 1) for i, text in enumerate(texts[:-1])]
    thread = thread_of(texts[-1:], ["me"], thread_id="now", line=99)
    task = SummarizationTask(max_points=max_points, max_messages=len(texts), **options).bind("summarization",
                                                                                              TEMPLATES)
    row = task.build(thread, context(task, earlier + [thread], texts=texts), Draws(np.random.default_rng(0)))
    if isinstance(row, str):
        return row
    assert row.meta["variant"] == "feed" and len(row.meta["thread_ids"]) == len(texts)
    return transcript_and_summary(task, row)


def test_feed_posts_that_share_nothing_make_no_summary():
    # Separate posts that share no word are equally (un)representative: an answer would pick them by their
    # place in the feed, and a model trained on it would learn to quote the first posts. The thread goes to
    # another task instead.
    assert summarize_feed(UNRELATED) == nothing_shared(2, 4.5)
    assert summarize_feed(UNRELATED, feed_min_shared=1) == nothing_shared(1, 4.5)


# Pairs of posts that share one word, each in another sense, and two posts about one wrestling match.
ONE_WORD_APART = ["Social Security checks may arrive late this month.", "Our security team runs phishing drills.",
                  "Data poisoning attacks on preference learning.", "Found this poll's data point insane lol"]
SAME_MATCH = ["Toni Storm retains the AEW title tonight!", "AEW main event: Mariah May challenges Toni Storm."]


def test_feed_posts_that_share_one_word_are_no_summary_by_default():
    # "security" and "data" are all these posts share: a model told to quote what best shows the feed would
    # learn that any repeated word makes two posts its subject.
    assert summarize_feed(ONE_WORD_APART) == nothing_shared(2, 4.5)
    lines, summary = summarize_feed(ONE_WORD_APART, max_points=2, feed_min_shared=1, feed_rare_zipf=8)  # 0.4.2
    assert len(summary) == 2 and set(summary) <= set(lines)
    # Posts that share a subject (Toni Storm, AEW) are quoted, and only they.
    lines, summary = summarize_feed(ONE_WORD_APART[:2] + SAME_MATCH + ONE_WORD_APART[2:])
    assert [lines.index(line) for line in summary] == [2, 3]


TWO_HOSPITALS = ["Rural hospitals may close soon.", "Two hospitals in rural Ohio merged."]
# Two posts that share two common words and nothing else: a tennis final and a football scandal.
TWO_COMMON_WORDS = ["Canada won the final set at Indian Wells.", "Canada Soccer's final report on the scandal is out."]


def test_feed_posts_that_share_only_common_words_are_no_summary_by_default():
    # "canada" and "final" are common in general English (Zipf 5.0 and 5.3): posts on many subjects share such
    # a pair. A subject needs one shared word rarer than feed_rare_zipf (4.5): "toni" and "aew", not "canada".
    texts = [UNRELATED[0], TWO_COMMON_WORDS[0], UNRELATED[1], TWO_COMMON_WORDS[1], UNRELATED[2]]
    assert summarize_feed(texts) == nothing_shared(2, 4.5)
    lines, summary = summarize_feed(texts, feed_rare_zipf=8)  # 0.5.0's rule quoted them
    assert [lines.index(line) for line in summary] == [1, 3]
    lines, summary = summarize_feed(texts[:2] + SAME_MATCH + texts[2:])
    assert [lines.index(line) for line in summary] == [2, 3]
    task = SummarizationTask()
    assert not task.share_a_subject({"canada", "final", "set"}, {"canada", "final", "scandal"})
    assert task.share_a_subject({"toni", "storm", "title"}, {"toni", "storm", "challenges"})


def test_a_feed_answer_quotes_one_subject_whole_never_posts_of_two():
    # Two pairs on two subjects, and room for four posts: quoting the four most central would put two unrelated
    # pairs in one answer, and with three a post without the one it shares its subject with. The answer is the
    # subject with the most centrality, whole.
    texts = [SAME_MATCH[0], UNRELATED[0], TWO_HOSPITALS[0], SAME_MATCH[1], UNRELATED[1], TWO_HOSPITALS[1],
             UNRELATED[2], UNRELATED[3]]
    for max_points in (3, 4):
        lines, summary = summarize_feed(texts, max_points=max_points)
        assert [lines.index(line) for line in summary] == [2, 5]


def test_only_feed_posts_that_share_content_words_are_picked_and_the_prompt_asks_for_that_many():
    texts = UNRELATED[:3] + ["Flooded park trail again, and the council approved bike lanes for it."] + UNRELATED[3:]
    lines, summary = summarize_feed(texts, max_points=4)  # 4 of the 8 posts could be asked for
    # The new post shares words with the river post and the council post; none of the others shares any, so
    # the summary is those three, not a fourth taken by position (transcript_and_summary checks the count).
    assert [lines.index(line) for line in summary] == [1, 3, 5]


def test_feed_posts_that_tie_at_the_cut_are_all_left_out():
    # Two of four posts can be asked for, and three say the same: which two would be a choice by position.
    same = ["Solar panels on the library roof.", "The library roof gets solar panels.",
            "Solar panels, library roof: done."]
    assert summarize_feed(same + ["Volcano erupted overnight."]) == TIED
    # Three of six: the tram pair shares more than the parks posts, which tie with each other, so the summary
    # is the pair, and the prompt asks for two (the parks posts share one word, so they are candidates only
    # with feed_min_shared=1; with the default they are not, and the answer is the same).
    tram = ["The tram downtown is late.", "Downtown tram late again!"]
    parks = ["Parks benches.", "Parks trees.", "Parks lights."]
    lines, summary = summarize_feed(tram + parks + ["Volcano erupted overnight."], feed_min_shared=1)
    assert summary == lines[:2]
