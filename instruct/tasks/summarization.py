"""Summarization: summarize a conversation; the offline response is an *extractive* summary.

Real BluePrint threads are mostly one or two messages, so a thread too short to summarize is preceded by
whole earlier threads of the same cluster and split (the feed a reader scrolled past), within a budget. The
conversation is shown as lines ``User_k: text``, users labelled ``User_0, User_1 …`` by first appearance.

The response is no invented prose: it is the most central messages — TF-IDF cosine (cluster IDF) to the
conversation's centroid — in conversation (time) order, each as its transcript line ``User_k: text``, so
every response line is a line of the prompt's conversation. A message without content words, or one that
repeats a picked line, is never picked.
"""

from __future__ import annotations

from instruct.records import Message, Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import Slots
from instruct.tfidf import tfidf_vectors


def one_line(text: str) -> str:
    """A message on one transcript line: runs of whitespace (line breaks too) become one space."""
    return " ".join(text.split())


class SummarizationTask(Task):
    """Extractive summaries of conversations.

    Args:
        weight: relative chance of being drawn.
        max_points: the summary has at most this many messages: ``min(max_points, ceil(n / 2))`` for a
            conversation of ``n`` messages (fewer if too few have content words), so it is always shorter
            than the conversation. Templates that name the number get the actual count.
        min_messages: a conversation needs at least this many text messages (>= 3). A thread that has as
            many stands alone; a shorter one is preceded by earlier threads.
        max_messages: budget of the conversation in messages.
        max_chars: budget of the conversation in characters of message text.
        lookback: how many earlier threads of the cluster may be prepended to a short thread.
    """

    template_file = "summarization"
    slots = {"default": Slots.of("conversation", optional=("max_points",))}
    uses_stats = True

    bounds = {"max_points": (1, None), "min_messages": (3, None), "max_messages": (3, None), "max_chars": (1, None)}

    def __init__(self, weight: float = 1.0, max_points: int = 3, min_messages: int = 3, max_messages: int = 8,
                 max_chars: int = 3000, lookback: int = 20):
        super().__init__(weight)
        if max_points < 1:
            raise ValueError("summarization needs max_points >= 1")
        if min_messages < 3 or max_messages < min_messages:
            raise ValueError("summarization needs 3 <= min_messages <= max_messages")
        self.max_points = max_points
        self.min_messages = min_messages
        self.max_messages = max_messages
        self.max_chars = max_chars
        self.lookback = lookback

    def conversation(self, thread: Thread, context: TaskContext) -> tuple[list[Message], list[str]]:
        """The conversation's messages, oldest first, and the ids of the threads they come from."""
        own = thread.text_messages()
        if len(own) >= self.min_messages:
            # A real conversation stands alone; a long one keeps its beginning, which the rest answers.
            kept, chars = [], 0
            for message in own[: self.max_messages]:
                if kept and chars + len(message.text) > self.max_chars:
                    break
                kept.append(message)
                chars += len(message.text)
            return kept, [thread.id]
        messages, ids = list(own), [thread.id]
        chars = sum(len(m.text) for m in own)
        # Whole earlier threads, newest first, and stop at the first that does not fit, so the feed shown
        # is contiguous, as a reader saw it.
        for earlier in reversed(context.earlier()):
            texts = earlier.text_messages()
            if not texts:
                continue
            size = sum(len(m.text) for m in texts)
            if len(messages) + len(texts) > self.max_messages or chars + size > self.max_chars:
                break
            messages = texts + messages
            ids.insert(0, earlier.id)
            chars += size
        return messages, ids

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        if not thread.text_messages():
            return "no text message"
        if len(self.conversation(thread, context)[0]) < self.min_messages:
            return f"conversation shorter than {self.min_messages} messages"
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        messages, thread_ids = self.conversation(thread, context)
        labels: dict[str, str] = {}
        lines = [f"{labels.setdefault(m.user, f'User_{len(labels)}')}: {one_line(m.text)}" for m in messages]
        vectors = tfidf_vectors([m.text for m in messages], context.stats)
        centroid: dict[str, float] = {}  # the sum of the vectors: the mean's direction, which is all a ranking needs
        for vector in vectors:
            for term, weight in vector.items():
                centroid[term] = centroid.get(term, 0.0) + weight
        if not centroid:
            return "no content words in the conversation"
        # Vectors are unit length, so ranking by the dot product with the centroid ranks by cosine to it.
        # Rounded, so messages that tie (unrelated ones all score their own length, 1) tie exactly instead of
        # by rounding noise, and the stable sort lets the earlier message win.
        centrality = [round(sum(weight * centroid[term] for term, weight in vector.items()), 9) for vector in vectors]
        points = min(self.max_points, (len(messages) + 1) // 2)
        picked: list[int] = []
        for i in sorted(range(len(messages)), key=lambda i: -centrality[i]):
            # A message without content words says nothing to summarize, and a repeated one nothing new.
            if len(picked) == points or centrality[i] <= 0:
                break
            if all(lines[i] != lines[j] for j in picked):
                picked.append(i)
        picked.sort()
        instruction, template_id = self.render("default", draws, conversation="\n".join(lines),
                                               max_points=len(picked))
        return self.row(thread, context, instruction=instruction, response="\n".join(lines[i] for i in picked),
                        template_id=template_id, variant="default", thread_ids=thread_ids)
