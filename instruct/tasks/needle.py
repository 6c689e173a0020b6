"""Needle in a haystack: retrieve from a feed of messages.

BluePrint pseudonymises user ids per thread, so a "same user's history" never exists in the released data.
The haystack is therefore a *feed*: the messages of earlier threads of the same cluster (and split),
followed by the thread's own messages, within a budget of messages and characters: the longest run of the
split's newest messages that fits, cut from the feed's message log (instruct/feed.py). Users are relabelled
``User_0, User_1 …`` in order of first appearance within the haystack.

Variants: the n-th message; who wrote a quoted snippet; what a user wrote right after a snippet; several
n-th messages at once. Every answer occurs exactly once in the haystack, so it is never ambiguous.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
from typing import Iterator

from instruct.feed import MessageLog
from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import ONE_THREAD, Slots
from instruct.text import join_words

VARIANTS = ("nth_message", "who_wrote", "reply_after", "multi")
_WORD_SPAN = re.compile(r"\S+")


def _line_heads(count: int) -> list[str]:
    """What comes before the text of each line when every author differs (``[1] User_0: ``,
    ``\\n[2] User_1: `` …): each head carries the line break before it, so a haystack's text is one join over
    heads and texts."""
    return ["[1] User_0: "] + [f"\n[{number}] User_{number - 1}: " for number in range(2, count + 1)]


def _numbers(count: int) -> list[str]:
    """The line numbers ``[1] ``, ``\\n[2] `` …, with the line break before them as in `_line_heads`."""
    return ["[1] "] + [f"\n[{number}] " for number in range(2, count + 1)]


def _labels(count: int) -> list[str]:
    return [f"User_{index}" for index in range(count)]


# Made once for the usual sizes (longer haystacks make their own).
_TABLE_SIZE = 256
_LINE_HEADS = _line_heads(_TABLE_SIZE)
_NUMBERS = _numbers(_TABLE_SIZE)
_LABELS = _labels(_TABLE_SIZE)


def _first(table: list[str], count: int, make) -> list[str]:
    """The first ``count`` items of a precomputed table, or all of them made afresh if the table is shorter."""
    return table[:count] if count <= len(table) else make(count)


_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else _SUFFIXES.get(n % 10, "th")
    return f"{n}{suffix}"


class Haystack:
    """Numbered feed lines ``[i] User_k: text``; knows which texts and snippets are unique in it.

    Args:
        users: the author of each message, oldest first.
        texts: the text of each message.
        thread_ids: every thread with a message in the haystack, oldest first.
    """

    __slots__ = ("texts", "thread_ids", "labels", "text")

    def __init__(self, users: list[str], texts: list[str], thread_ids: list[str]):
        self.texts = texts
        self.thread_ids = thread_ids
        # Users are numbered in order of first appearance. This runs for every needle row, so it is all C-level
        # iteration, and the text is one join over its pieces laid out by slice assignment. When every author
        # differs the labels and whole line heads ("\\n[2] User_1: ") are slices of tables, cheaper than a label
        # lookup for every line and a join over number, label, ": " and text pieces. (A set would tell sooner
        # that every author differs, but real feeds often repeat an author, and then it is a pass more.)
        count = len(texts)
        first_seen = dict.fromkeys(users)
        if len(first_seen) == count:
            self.labels = _first(_LABELS, count, _labels)
            pieces = [""] * (2 * count)
            pieces[0::2] = _first(_LINE_HEADS, count, _line_heads)
            pieces[1::2] = texts
        else:
            labels = _first(_LABELS, len(first_seen), _labels)
            self.labels = list(map(dict(zip(first_seen, labels)).__getitem__, users))
            pieces = [": "] * (4 * count)  # number, label, ": ", text for every line
            pieces[0::4] = _first(_NUMBERS, count, _numbers)
            pieces[1::4] = self.labels
            pieces[3::4] = texts
        self.text = "".join(pieces)

    def __len__(self) -> int:
        return len(self.texts)

    def unique(self, fragment: str) -> bool:
        return self.text.count(fragment) == 1

    def depths(self, positions: list[int]) -> list[float]:
        """Where the positions lie in the haystack, from 0 (first message) to 1 (last), to 4 decimals."""
        table = _depth_table(max(1, len(self.texts) - 1))
        return [table[position] for position in positions]


@functools.lru_cache(maxsize=1024)
def _depth_table(span: int) -> tuple[float, ...]:
    """Every depth of a haystack of span + 1 messages, computed once per span: round() to 4 decimals is
    costly enough to keep off the per-row path."""
    return tuple(round(position / span, 4) for position in range(span + 1))


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
        max_tokens: when set, the haystack is sized so the whole prompt has at most this many tokens (counted
            by the run's budget.tokenizer, or its estimate); ``max_messages`` still caps it, ``max_chars`` does not.
    """

    template_file = "needle"
    slots = {
        # The haystack spans many threads: a template calls it a feed, never "this thread/conversation".
        "nth_message": Slots.of("haystack", "ordinal", must_not_say=ONE_THREAD),
        "who_wrote": Slots.of("haystack", "snippet", must_not_say=ONE_THREAD),
        "reply_after": Slots.of("haystack", "user", "snippet", must_not_say=ONE_THREAD),
        "multi": Slots.of("haystack", "ordinals", must_not_say=ONE_THREAD),
    }

    bounds = {"max_messages": (2, None), "max_chars": (1, None), "min_messages": (2, None), "needles": (1, None),
              "snippet_words": (1, None)}

    def __init__(self, weight: float = 1.0, variants: list[str] = VARIANTS, max_messages: int = 30,
                 max_chars: int = 6000, min_messages: int = 5, lookback: int = 40, needles: int = 3,
                 snippet_words: int = 5, max_tokens: int | None = None):
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
        self.max_tokens = max_tokens
        self._count_tokens = None  # set by size_with (instruct/filters/build.py) when max_tokens is set
        self._questions = [(variant, getattr(self, f"_{variant}")) for variant in self.variants]

    def size_with(self, count_tokens) -> None:
        """Size haystacks to ``max_tokens`` with this token counter (a callable text → tokens)."""
        self._count_tokens = count_tokens
        self._token_cache: dict[str, int] = {}
        self._line_head_tokens = count_tokens("\n[10] User_1: ")  # what a line adds besides its text

    def haystack(self, thread: Thread, context: TaskContext, max_messages: int | None = None,
                 max_chars: int | None = None) -> Haystack:
        """The thread's text messages preceded by the feed's: the longest run of the split's newest messages,
        ending with the thread's last, that fits both budgets (the task's own unless given)."""
        max_messages = self.max_messages if max_messages is None else max_messages
        max_chars = self.max_chars if max_chars is None else max_chars
        own_users = [message.user for message in thread.messages if message.text]
        own_texts = [message.text for message in thread.messages if message.text]
        own_ids = [thread.id] if own_texts else []
        spare_messages, spare_chars = max_messages - len(own_texts), max_chars - sum(map(len, own_texts))
        if spare_messages < 0 or spare_chars < 0:  # the thread alone is over budget: its newest messages only
            spare_messages, spare_chars = max_messages, max_chars
            log, own_users, own_texts, own_ids = MessageLog.of([thread]), [], [], []
        elif context.feed is not None:
            log = context.feed.log(context.split)
        else:
            log = MessageLog.of(context.earlier())
        start = log.start_within(spare_messages, spare_chars)
        users, texts = log.users[start:], log.texts[start:]
        users += own_users
        texts += own_texts
        return Haystack(users, texts, log.threads_from(start) + own_ids)

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        if thread.anchor_post() is None:
            return "no text message"
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        if self._count_tokens is not None:
            return self._build_within_tokens(thread, context, draws)
        return self._build(thread, context, draws, self.haystack(thread, context))

    def _build_within_tokens(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        """RULER's way: build with as many messages as the message budget allows, count the prompt's tokens,
        and grow or shrink the number of messages until the largest haystack whose prompt fits is found. The
        next size is guessed from each message's own token count (remembered per text, as a message is in many
        haystacks), so a row usually takes two exact counts. The question is asked anew at each size, so the
        needle's depth is drawn over the haystack that is kept, as without a token budget."""
        texts = self.haystack(thread, context, max_chars=sys.maxsize).texts  # the most the message budget allows
        costs = [self._message_tokens(text) for text in texts]  # oldest first
        fits, over, best, size = self.min_messages - 1, len(texts) + 1, None, len(texts)
        for _ in range(8):
            if size < self.min_messages:
                break
            row = self._build(thread, context, draws, self.haystack(thread, context, size, sys.maxsize))
            if isinstance(row, str):
                return row
            tokens = self._count_tokens(row.instruction)
            if tokens <= self.max_tokens:
                fits, best = size, row
            else:
                over = size
            if over - fits <= 1:
                break
            size = min(over - 1, max(fits + 1, self._next_size(costs, size, self.max_tokens - tokens)))
        return best or f"prompt over tasks.needle.max_tokens={self.max_tokens} with {self.min_messages} messages"

    @staticmethod
    def _next_size(costs: list[int], size: int, spare: int) -> int:
        """The number of newest messages after adding (spare > 0) or dropping (spare < 0) the oldest ones of a
        haystack of ``size`` until about ``spare`` tokens are used or freed."""
        first = len(costs) - size  # the index of the haystack's oldest message
        if spare < 0:
            while first < len(costs) and spare < 0:
                spare += costs[first]
                first += 1
        else:
            while first > 0 and spare - costs[first - 1] >= 0:
                first -= 1
                spare -= costs[first]
        return len(costs) - first

    def _message_tokens(self, text: str) -> int:
        cache = self._token_cache
        count = cache.get(text)
        if count is None:
            if len(cache) >= 65536:  # the feed moves on: forget the old texts
                cache.clear()
            count = cache[text] = self._count_tokens(text) + self._line_head_tokens
        return count

    def _build(self, thread: Thread, context: TaskContext, draws: Draws, haystack: Haystack) -> Row | str:
        if len(haystack) < self.min_messages:
            return f"haystack smaller than {self.min_messages} messages"
        variant, ask = draws.pick(self._questions)
        built = ask(haystack, draws)
        if isinstance(built, str):
            return built
        values, response, positions = built
        instruction, template_id = self.render(variant, draws, haystack=haystack.text, **values)
        return self.row(thread, context, instruction=instruction, response=response, template_id=template_id,
                        variant=variant, thread_ids=haystack.thread_ids, needle_depths=haystack.depths(positions))

    # One method per variant: (template values, response, needle positions) or a decline reason.

    @staticmethod
    def _answerable(haystack: Haystack, draws: Draws, first: int = 0, single_line: bool = False) -> Iterator[int]:
        """The positions from ``first`` on whose text is unique in the haystack (and has no line break, if
        ``single_line``), in a random order. Checked lazily: the first k of them are a uniform draw of k
        answerable positions, so a question needs a few uniqueness scans of the haystack, not one per message."""
        texts = haystack.texts
        for offset in draws.order(len(texts) - first):
            text = texts[first + offset]
            if not (single_line and "\n" in text) and haystack.unique(text):
                yield first + offset

    def _nth_message(self, haystack: Haystack, draws: Draws):
        position = next(self._answerable(haystack, draws), None)
        if position is None:
            return "no message text is unique in the haystack"
        return {"ordinal": ordinal(position + 1)}, haystack.texts[position], [position]

    def _multi(self, haystack: Haystack, draws: Draws):
        picked = sorted(itertools.islice(self._answerable(haystack, draws, single_line=True), self.needles))
        if len(picked) < 2:
            return "fewer than two single-line unique messages"
        response = "\n".join([haystack.texts[p] for p in picked])
        return {"ordinals": join_words([ordinal(p + 1) for p in picked])}, response, picked

    def _snippet(self, haystack: Haystack, position: int, draws: Draws) -> str | None:
        """A run of ``snippet_words`` words of the message (fewer if it is shorter), unique in the haystack and
        quotable (no double quote, no line break), at one of up to four random places; None if none is."""
        text = haystack.texts[position]
        words = text.split()
        size = min(self.snippet_words, len(words))
        # A run keeps the text's own spacing. Most texts are words between single spaces, and then a run is a
        # join of its words (cheap); the others are cut at the places of their words (a regex pass).
        # (str.split and the regex's \S agree on what whitespace is.)
        spans = None if " ".join(words) == text else [(m.start(), m.end()) for m in _WORD_SPAN.finditer(text)]
        for start in itertools.islice(draws.order(len(words) - size + 1), 4):
            if spans is None:
                snippet = " ".join(words[start: start + size])
            else:
                snippet = text[spans[start][0]: spans[start + size - 1][1]]
            if '"' not in snippet and "\n" not in snippet and haystack.unique(snippet):
                return snippet
        return None

    def _who_wrote(self, haystack: Haystack, draws: Draws):
        for position in itertools.islice(draws.order(len(haystack)), 6):
            snippet = self._snippet(haystack, position, draws)
            if snippet:
                return {"snippet": f'"{snippet}"'}, haystack.labels[position], [position]
        return "no unique snippet found"

    def _reply_after(self, haystack: Haystack, draws: Draws):
        for position in itertools.islice(self._answerable(haystack, draws, first=1), 6):
            snippet = self._snippet(haystack, position - 1, draws)
            if snippet:
                values = {"user": haystack.labels[position], "snippet": f'"{snippet}"'}
                return values, haystack.texts[position], [position]
        return "no unique message with a unique snippet before it"

