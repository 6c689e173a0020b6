"""The feed's message log gives the needle haystack a plain walk over the earlier threads gives.

The plain walk: newest thread first, whole threads while they fit both budgets, then the newest messages of
the first thread that does not, then stop. The log takes the longest suffix of the split's messages within
the budgets instead; the two must agree on every haystack, across window evictions and log compactions.
"""

from __future__ import annotations

import random

import pytest

from instruct.feed import Feed, MessageLog
from instruct.records import Message, Thread
from instruct.tasks.base import TaskContext
from instruct.tasks.needle import NeedleTask
from instruct.text import ClusterStats


def _plain_haystack(thread: Thread, earlier: list[Thread], max_messages: int, max_chars: int):
    chosen: list[Message] = []
    thread_ids: list[str] = []
    chars = 0
    for source in [thread, *reversed(earlier)]:
        texts = [m for m in reversed(source.messages) if m.text]
        if not texts:
            continue
        size = sum(len(m.text) for m in texts)
        if len(chosen) + len(texts) <= max_messages and chars + size <= max_chars:
            chosen += texts
            thread_ids.append(source.id)
            chars += size
            continue
        taken = len(chosen)
        for message in texts:
            if len(chosen) == max_messages or chars + len(message.text) > max_chars:
                break
            chosen.append(message)
            chars += len(message.text)
        if len(chosen) > taken:
            thread_ids.append(source.id)
        break
    chosen.reverse()
    thread_ids.reverse()
    return [m.user for m in chosen], [m.text for m in chosen], thread_ids


def _random_thread(rng: random.Random, number: int) -> Thread:
    messages = []
    for index in range(rng.randint(1, 8)):
        text = rng.choice([None, "", "x" * rng.randint(1, 400), f"post {number} {index}", "a\nb c"])
        messages.append(Message(f"u{rng.randint(0, 30)}", index, text, None))
    return Thread(f"t-{number}", "cluster_0", number + 1, tuple(messages))


@pytest.mark.parametrize("lookback,max_messages,max_chars", [(40, 30, 6000), (5, 12, 900), (1, 3, 50), (0, 30, 6000)])
def test_haystacks_from_the_log_equal_the_plain_walk(lookback, max_messages, max_chars):
    rng = random.Random(lookback * 1000 + max_messages)
    task = NeedleTask(max_messages=max_messages, max_chars=max_chars, min_messages=2, lookback=lookback)
    feed = Feed(lookback)
    window: list[tuple[Thread, str] | None] = []  # every line appended, for the plain reference
    context = TaskContext(cluster="cluster_0", stats=ClusterStats(), feed=feed)
    for number in range(6000):  # enough messages for the logs to compact several times
        thread = _random_thread(rng, number)
        context.split = rng.choice(["train", "train", "validation"])
        recent = window[-max(lookback, 1):]
        earlier = [item[0] for item in recent if item is not None and item[1] == context.split]
        assert feed.earlier(context.split) == earlier
        haystack = task.haystack(thread, context)
        users, texts, thread_ids = _plain_haystack(thread, earlier, max_messages, max_chars)
        assert (haystack.texts, haystack.thread_ids) == (texts, thread_ids)
        first_seen: dict[str, str] = {}
        assert haystack.labels == [first_seen.setdefault(user, f"User_{len(first_seen)}") for user in users]
        item = None if rng.random() < 0.1 else (thread, context.split)
        feed.append(item)
        window.append(item)


def test_a_context_without_a_feed_reads_earlier():
    threads = [Thread(f"t-{i}", "cluster_0", i + 1, (Message("u", 0, f"text {i}", None),)) for i in range(8)]
    task = NeedleTask(min_messages=2)
    context = TaskContext(cluster="cluster_0", stats=ClusterStats(), earlier=lambda: threads[:-1])
    haystack = task.haystack(threads[-1], context)
    assert haystack.texts == [f"text {i}" for i in range(8)]
    assert haystack.thread_ids == [t.id for t in threads]


def test_the_log_stays_bounded():
    feed = Feed(3)
    for number in range(20_000):
        feed.append((Thread(f"t-{number}", "c", number, (Message("u", 0, "some text", None),)), "train"))
    log = feed.log("train")
    assert len(log.texts) < 5000 and len(log.chars) == len(log.texts) + 1
    assert log.texts[log.first:] == ["some text"] * 3


def test_message_log_of_threads():
    threads = [Thread("a", "c", 1, (Message("u", 0, "ab", None), Message("v", 1, None, None))),
               Thread("b", "c", 2, (Message("w", 0, "cde", None),))]
    log = MessageLog.of(threads)
    assert (log.users, log.texts, log.chars) == (["u", "w"], ["ab", "cde"], [0, 2, 5])
    assert log.start_within(2, 5) == 0 and log.start_within(2, 4) == 1 and log.start_within(0, 100) == 2
    assert [log.threads_from(start) for start in range(3)] == [["a", "b"], ["b"], []]
