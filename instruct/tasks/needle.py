"""Needle in a haystack: retrieve from a feed of messages.

BluePrint pseudonymises user ids per thread, so a "same user's history" never exists in the released data.
The haystack is therefore a *feed*: the messages of earlier threads of the same cluster (and split),
followed by the thread's own messages, within a budget of messages and characters. Users are relabelled
``User_0, User_1 …`` in order of first appearance within the haystack.

Variants: the n-th message; who wrote a quoted snippet; what a user wrote right after a snippet; several
n-th messages at once. Every answer occurs exactly once in the haystack, so it is never ambiguous.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterator

from instruct.records import Message, Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import Slots
from instruct.text import join_words

VARIANTS = ("nth_message", "who_wrote", "reply_after", "multi")
_WORD_SPAN = re.compile(r"\S+")
# Made once: every haystack line starts with them (longer haystacks make their own).
_LABELS = [f"User_{index}" for index in range(256)]
_PREFIXES = [f"[{number}] " for number in range(1, 257)]
_TEXT_CACHE = 512  # threads whose text messages are remembered (a look-back window or more; bounded)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Haystack:
    """Numbered feed lines ``[i] User_k: text``; knows which texts and snippets are unique in it."""

    def __init__(self, messages: list[Message], thread_ids: list[str]):
        self.messages = messages
        self.thread_ids = list(dict.fromkeys(thread_ids))  # every thread with a message in the haystack
        # Users are numbered in order of first appearance; every line is built in one comprehension (this
        # runs for every needle row).
        users = [message.user for message in messages]
        short = len(users) <= len(_PREFIXES)
        label_of = dict(zip(dict.fromkeys(users), _LABELS if short else map("User_{}".format, itertools.count())))
        self.labels = [label_of[user] for user in users]
        prefixes = _PREFIXES if short else map("[{}] ".format, itertools.count(1))
        self.text = "\n".join([prefix + label + ": " + message.text
                               for prefix, label, message in zip(prefixes, self.labels, messages)])

    def __len__(self) -> int:
        return len(self.messages)

    def unique(self, fragment: str) -> bool:
        return self.text.count(fragment) == 1

    def depth(self, position: int) -> float:
        return round(position / max(1, len(self) - 1), 4)


class NeedleTask(Task):
    """Retrieval questions over a feed of messages.

    Args:
        weight: relative chance of being drawn.
        variants: which question kinds to ask (drawn uniformly): nth_message, who_wrote, reply_after, multi.
        max_messages: haystack budget in messages.
        max_chars: haystack budget in characters of message text.
        min_messages: smaller haystacks are declined.
        lookback: how many earlier threads of the cluster may feed the haystack.
        needles: how many answers the ``multi`` variant asks for.
        snippet_words: length of a quoted snippet, in words.
    """

    template_file = "needle"
    slots = {
        "nth_message": Slots.of("haystack", "ordinal"),
        "who_wrote": Slots.of("haystack", "snippet"),
        "reply_after": Slots.of("haystack", "user", "snippet"),
        "multi": Slots.of("haystack", "ordinals"),
    }

    def __init__(self, weight: float = 1.0, variants: list[str] = VARIANTS, max_messages: int = 30,
                 max_chars: int = 6000, min_messages: int = 5, lookback: int = 40, needles: int = 3,
                 snippet_words: int = 5):
        super().__init__(weight)
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown or not variants:
            raise ValueError(f"needle variants must be a non-empty subset of {list(VARIANTS)}, got {list(variants)}")
        if min_messages < 2 or max_messages < min_messages:
            raise ValueError("needle needs 2 <= min_messages <= max_messages")
        self.variants = list(variants)
        self.max_messages = max_messages
        self.max_chars = max_chars
        self.min_messages = min_messages
        self.lookback = lookback
        self.needles = needles
        self.snippet_words = snippet_words
        self._texts: dict[int, tuple[Thread, list[Message], int]] = {}

    def haystack(self, thread: Thread, context: TaskContext) -> Haystack:
        chosen: list[Message] = []
        thread_ids: list[str] = []
        chars = 0
        max_messages, max_chars = self.max_messages, self.max_chars
        remembered = self._texts
        # Fill from the newest backwards so the thread itself is always in, then the feed before it; stop at
        # the first message over budget, so only as many earlier threads are looked at as fit. A thread that
        # fits whole is taken in one step (most do); only the last one is walked message by message.
        for source in itertools.chain((thread,), reversed(context.earlier())):
            entry = remembered.get(id(source))
            if entry is None or entry[0] is not source:  # inlined: this loop runs ~20 times per row
                entry = self._remember(source)
            _, texts, size = entry
            if not texts:
                continue
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
        return Haystack(chosen, thread_ids)

    def _remember(self, thread: Thread) -> tuple[Thread, list[Message], int]:
        """The thread's messages with text, newest first, and their total length; remembered, since a thread
        feeds the haystacks of many later threads. Keyed by identity (the thread is kept, so its id cannot
        be reused while it is remembered)."""
        texts = [message for message in reversed(thread.messages) if message.text]
        if len(self._texts) >= _TEXT_CACHE:
            self._texts.clear()
        entry = self._texts[id(thread)] = (thread, texts, sum(len(message.text) for message in texts))
        return entry

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        if not thread.text_messages():
            return "no text message"
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        haystack = self.haystack(thread, context)
        if len(haystack) < self.min_messages:
            return f"haystack smaller than {self.min_messages} messages"
        variant = draws.pick(self.variants)
        built = getattr(self, f"_{variant}")(haystack, draws)
        if isinstance(built, str):
            return built
        values, response, positions = built
        instruction, template_id = self.render(variant, draws, haystack=haystack.text, **values)
        return self.row(thread, context, instruction=instruction, response=response, template_id=template_id,
                        variant=variant, thread_ids=haystack.thread_ids,
                        needle_depths=[haystack.depth(p) for p in positions])

    # One method per variant: (template values, response, needle positions) or a decline reason.

    @staticmethod
    def _answerable(haystack: Haystack, candidates: list[int], draws: Draws) -> Iterator[int]:
        """The candidate positions whose text is unique in the haystack, in a random order. Checked lazily:
        the first k of them are a uniform draw of k answerable positions, so a question needs a few
        uniqueness scans of the haystack, not one per message."""
        for index in draws.order(len(candidates)):
            if haystack.unique(haystack.messages[candidates[index]].text):
                yield candidates[index]

    def _nth_message(self, haystack: Haystack, draws: Draws):
        position = next(self._answerable(haystack, list(range(len(haystack))), draws), None)
        if position is None:
            return "no message text is unique in the haystack"
        return {"ordinal": ordinal(position + 1)}, haystack.messages[position].text, [position]

    def _multi(self, haystack: Haystack, draws: Draws):
        single_line = [p for p, m in enumerate(haystack.messages) if "\n" not in m.text]
        picked = sorted(itertools.islice(self._answerable(haystack, single_line, draws), self.needles))
        if len(picked) < 2:
            return "fewer than two single-line unique messages"
        response = "\n".join(haystack.messages[p].text for p in picked)
        return {"ordinals": join_words([ordinal(p + 1) for p in picked])}, response, picked

    def _snippet(self, haystack: Haystack, position: int, draws: Draws) -> str | None:
        text = haystack.messages[position].text
        spans = [(m.start(), m.end()) for m in _WORD_SPAN.finditer(text)]
        size = min(self.snippet_words, len(spans))
        for start in itertools.islice(draws.order(len(spans) - size + 1), 4):
            snippet = text[spans[start][0]: spans[start + size - 1][1]]
            if '"' not in snippet and "\n" not in snippet and haystack.unique(snippet):
                return snippet
        return None

    def _who_wrote(self, haystack: Haystack, draws: Draws):
        for position in itertools.islice(draws.order(len(haystack)), 6):
            snippet = self._snippet(haystack, int(position), draws)
            if snippet:
                return {"snippet": f'"{snippet}"'}, haystack.labels[position], [int(position)]
        return "no unique snippet found"

    def _reply_after(self, haystack: Haystack, draws: Draws):
        for position in itertools.islice(self._answerable(haystack, list(range(1, len(haystack))), draws), 6):
            snippet = self._snippet(haystack, position - 1, draws)
            if snippet:
                values = {"user": haystack.labels[position], "snippet": f'"{snippet}"'}
                return values, haystack.messages[position].text, [position]
        return "no unique message with a unique snippet before it"
