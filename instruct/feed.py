"""The feed: the threads a shard read just before the current one, as a reader scrolling the cluster saw them.

Tasks with a look-back (needle) read it through their `TaskContext`. The window is a distance
in the file: the last ``lookback`` lines read, rejected lines and threads of the other split included, so a
thread's feed does not depend on how the cluster is sharded. A task only sees threads of its own split.

Besides the threads, the feed keeps each split's text messages in one `MessageLog`, so a task that wants "the
newest messages that fit a budget" takes a slice of it instead of walking the threads for every row.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from typing import Iterable

from instruct.records import Thread

_COMPACT = 4096  # messages that left the window before a log drops them from its lists (keeps memory bounded)


class MessageLog:
    """The text messages of some threads, oldest first, as parallel lists that a haystack slices.

    Attributes:
        users, texts: the author and text of each message (messages without text are not logged).
        thread_ids, thread_starts: the id of each logged thread with text messages, and the index of its
            first message.
        chars: running totals, ``chars[i]`` = characters of the logged texts before message ``i``
            (one entry more than there are messages), so the size of any suffix is one subtraction.
        first: the index of the oldest message still in the window; the ones before it are left in the
            lists until there are enough of them to be worth dropping.
    """

    __slots__ = ("users", "texts", "thread_ids", "thread_starts", "chars", "first")

    def __init__(self):
        self.users: list[str] = []
        self.texts: list[str] = []
        self.thread_ids: list[str] = []
        self.thread_starts: list[int] = []
        self.chars: list[int] = [0]
        self.first = 0

    @classmethod
    def of(cls, threads: Iterable[Thread]) -> MessageLog:
        """A log of the given threads, oldest first."""
        log = cls()
        for thread in threads:
            log.add(thread)
        return log

    def add(self, thread: Thread) -> int:
        """Log the thread's text messages; returns how many there were."""
        start, total = len(self.texts), self.chars[-1]
        for message in thread.messages:
            text = message.text
            if text:
                total += len(text)
                self.users.append(message.user)
                self.texts.append(text)
                self.chars.append(total)
        if len(self.texts) > start:
            self.thread_ids.append(thread.id)
            self.thread_starts.append(start)
        return len(self.texts) - start

    def drop(self, count: int) -> None:
        """The oldest ``count`` messages left the window."""
        self.first += count
        if self.first >= _COMPACT:
            threads_gone = bisect_left(self.thread_starts, self.first)
            del self.thread_ids[:threads_gone]
            del self.thread_starts[:threads_gone]
            self.thread_starts = [start - self.first for start in self.thread_starts]
            for items in (self.users, self.texts, self.chars):
                del items[: self.first]
            self.first = 0

    def threads_from(self, start: int) -> list[str]:
        """The ids of the threads with a message at ``start`` or later, oldest first."""
        return self.thread_ids[bisect_right(self.thread_starts, start) - 1:] if start < len(self.texts) else []

    def start_within(self, max_messages: int, max_chars: int) -> int:
        """Where the longest suffix of the window's messages starts that has at most ``max_messages`` messages
        and ``max_chars`` characters (both >= 0)."""
        end = len(self.texts)
        by_chars = bisect_left(self.chars, self.chars[end] - max_chars, self.first, end)
        return max(self.first, end - max_messages, by_chars)


class Feed:
    """The last ``lookback`` lines read (at least one), and the text messages of each split's threads in them.

    Args:
        lookback: how many lines back the feed reaches.
    """

    def __init__(self, lookback: int):
        self._window: deque[tuple[Thread, str, MessageLog, int] | None] = deque()  # (…, its log, messages logged)
        self._size = max(lookback, 1)
        self._logs: dict[str, MessageLog] = {}

    def append(self, item: tuple[Thread, str] | None) -> None:
        """The next line read: a thread and its split, or None for a rejected line."""
        window = self._window
        if len(window) == self._size:
            leaving = window.popleft()
            if leaving is not None:
                leaving[2].drop(leaving[3])
        if item is None:
            window.append(None)
            return
        thread, split = item
        log = self.log(split)
        window.append((thread, split, log, log.add(thread)))

    def earlier(self, split: str) -> list[Thread]:
        """The threads of the split in the window, oldest first."""
        return [item[0] for item in self._window if item is not None and item[1] == split]

    def log(self, split: str) -> MessageLog:
        """The text messages of the split's threads in the window, oldest first."""
        log = self._logs.get(split)
        if log is None:
            log = self._logs[split] = MessageLog()
        return log
