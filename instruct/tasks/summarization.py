"""Summarization: pick the most representative messages of a conversation or of a feed.

Offline (no LLM responder) the task is *extractive* and its prompt says so: it asks for the ``{count}`` most
representative messages, quoted verbatim with their authors, one per line, and the response is exactly
that — the most central messages (summed TF-IDF cosine to the other messages, cluster IDF), in time order, each
as its transcript line ``User_k: text``. In a conversation an earlier message wins a tie (the replies answer
it). The posts of a feed are separate, so their order means nothing: two posts share a subject when they share
``feed_min_shared`` content words (2), one of them rarer than ``feed_rare_zipf`` (4.5) in general English, and the
answer is one subject, the group of posts linked so with the most centrality (at most ``{count}`` of its most
central posts, each linked to another quoted one). Groups or posts that tie are all left out, and a feed with no
two such posts makes no row (the thread goes to another task) rather than an answer that picks posts by their
position, or by common words two unrelated posts happen to share. Abstractive wording ("in a few sentences", "a
rundown") is used only by the ``*_llm`` variants, when an LLM responder writes the answer.

A thread with ``min_messages`` text messages of its own is shown alone, as one conversation (``thread``
variants). Real BluePrint threads are mostly one or two messages, so a shorter thread is shown in its *stretch
of the feed*, and the prompt presents it as a feed of separate posts, never as one discussion (``feed``
variants); ``feed: false`` turns those off. The stretches tile each 1024-line chunk: consecutive short threads
of one split, packed in file order up to the budget, a conversation of its own ending one. A stretch makes at
most one row, from the first of its threads drawn for the task, whatever its place in the stretch, so no two
rows show the same post and no answer is repeated. The stretch does not depend on which thread was drawn, so
neither does its answer: feeds that end at the drawn thread overlap, and keeping only the first of them to
quote a pair of posts would keep the one that ends at the second, its last post quoted in most rows. The manifest
counts rows per variant (``counts.per_task.summarization.variants``).
"""

from __future__ import annotations

from typing import Collection, Sequence

from instruct.records import Message, Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import ONE_THREAD, Slots
from instruct.text import zipf
from instruct.tfidf import tfidf_vectors


def one_line(text: str) -> str:
    """A message on one transcript line: runs of whitespace (line breaks too) become one space."""
    return " ".join(text.split())


TOO_FEW = "fewer than 2 distinct messages with content words"
TIED = "fewer than 2 posts of the feed are more central than the rest"
STRETCH_TAKEN = "an earlier thread of its stretch of the feed was drawn for it"
EXTRACTIVE_PROMISE = ("verbatim", "quote", "word for word", "exactly as written")
ABSTRACTIVE_WORDS = ("in a few sentences", "rundown", "paragraph", "in your own words", "overview", "explain")


def content_words_phrase(count: int) -> str:
    """``count`` content words, in words: how the manifest and the card state a feed's rule."""
    return "a content word" if count == 1 else f"{count} content words"


def nothing_shared(min_shared: int, rare_zipf: float) -> str:
    """Why a feed makes no row when fewer than two of its posts share ``min_shared`` words with another, one of
    them rarer than ``rare_zipf``."""
    rare = f" (one of them rarer than Zipf {rare_zipf:g})" if rare_zipf < 8 else ""
    return f"fewer than 2 distinct posts of the feed share {content_words_phrase(min_shared)}{rare} with another post"


class _Stretch:
    """Consecutive short threads of one split, shown together as a feed; ``taken`` once one was drawn."""

    __slots__ = ("threads", "groups", "messages", "chars", "taken")

    def __init__(self):
        self.threads: list[Thread] = []
        self.groups: list[list[Message]] = []
        self.messages = self.chars = 0
        self.taken = False

    def add(self, thread: Thread, texts: list[Message], chars: int) -> None:
        self.threads.append(thread)
        self.groups.append(texts)
        self.messages += len(texts)
        self.chars += chars


def _extractive(*required: str, must_not_say: tuple[str, ...] = ()) -> Slots:
    """What an extractive template must keep: it states the count, and promises a verbatim quote, not prose."""
    return Slots.of(*required, must_say=EXTRACTIVE_PROMISE, must_not_say=ABSTRACTIVE_WORDS + must_not_say)


class SummarizationTask(Task):
    """Extractive summaries of conversations and feeds (abstractive ones when an LLM writes them).

    Args:
        weight: relative chance of being drawn.
        max_points: the summary has at most this many messages: ``min(max_points, ceil(n / 2))`` for a
            conversation of ``n`` messages (fewer if too few have content words or, in a feed, share them
            with the others; never fewer than 2), so it is always shorter than the conversation. The prompt
            states the actual count.
        min_messages: a conversation needs at least this many text messages (>= 3). A thread that has as
            many stands alone; a shorter one is shown in its stretch of the feed.
        max_messages: budget of the conversation, and of a stretch of the feed, in messages.
        max_chars: budget of the conversation, and of a stretch of the feed, in characters of message text.
        feed: whether a short thread may be shown in its stretch of the feed (false: only threads with
            ``min_messages`` of their own).
        feed_min_shared: two feed posts share a subject when they share at least this many content words,
            and a post is quoted only with another it shares a subject with: one shared word is weak evidence
            of a shared subject (README.md, Fidelity, gives the measurement).
        feed_rare_zipf: ... and when at least one of those words is rarer than this in general English
            (wordfreq's Zipf scale; 8: any word): two common words ("canada", "final") link unrelated posts
            far more often than a name or a term ("haldeman", "kidney") does.
    """

    template_file = "summarization"
    slots = {
        "thread": _extractive("conversation", "count"),
        "feed": _extractive("feed", "count", must_not_say=ONE_THREAD),
        "thread_llm": Slots.of("conversation"),
        "feed_llm": Slots.of("feed", must_not_say=ONE_THREAD),
    }
    uses_stats = True

    bounds = {"max_points": (1, None), "min_messages": (3, None), "max_messages": (3, None), "max_chars": (1, None),
              "feed_min_shared": (1, None), "feed_rare_zipf": (0, 8)}

    def __init__(self, weight: float = 1.0, max_points: int = 3, min_messages: int = 3, max_messages: int = 8,
                 max_chars: int = 3000, feed: bool = True, feed_min_shared: int = 2, feed_rare_zipf: float = 4.5):
        super().__init__(weight)
        if max_points < 2:
            raise ValueError("summarization needs max_points >= 2")
        if min_messages < 3 or max_messages < min_messages:
            raise ValueError("summarization needs 3 <= min_messages <= max_messages")
        self.max_points = max_points
        self.min_messages = min_messages
        self.max_messages = max_messages
        self.max_chars = max_chars
        self.feed = feed
        self.feed_min_shared = feed_min_shared
        self.feed_rare_zipf = feed_rare_zipf
        self._nothing_shared = nothing_shared(feed_min_shared, feed_rare_zipf)
        self._stretches: dict[int, _Stretch] = {}  # line → the stretch of the feed it is in (short threads only)

    def begin_chunk(self, context: TaskContext) -> None:
        self._stretches = self.stretches(context.chunk) if self.feed else {}

    def stretches(self, chunk: Sequence[tuple[Thread, str]]) -> dict[int, _Stretch]:
        """The chunk's short threads tiled into stretches of the feed, by line: in file order, a split's
        consecutive short threads fill one stretch up to the budget, and a conversation of its own (which
        makes its own rows) ends it. A thread over the budget alone is a stretch of its own."""
        by_line, current = {}, {}
        for thread, split in chunk:
            texts = thread.text_messages()
            if not texts:
                continue
            if len(texts) >= self.min_messages:
                current.pop(split, None)
                continue
            chars = sum(len(m.text) for m in texts)
            stretch = current.get(split)
            if stretch is None or (stretch.messages + len(texts) > self.max_messages
                                   or stretch.chars + chars > self.max_chars):
                stretch = current[split] = _Stretch()
            stretch.add(thread, texts, chars)
            by_line[thread.line] = stretch
        return by_line

    def conversation(self, thread: Thread) -> tuple[list[list[Message]], list[str]]:
        """The messages shown, grouped by thread (in file order), and the ids of those threads."""
        own = thread.text_messages()
        if len(own) >= self.min_messages:
            # A real conversation stands alone; a long one keeps its beginning, which the rest answers.
            kept, chars = [], 0
            for message in own[: self.max_messages]:
                if kept and chars + len(message.text) > self.max_chars:
                    break
                kept.append(message)
                chars += len(message.text)
            return [kept], [thread.id]
        stretch = self._stretches.get(thread.line)
        if stretch is None:  # feed: false
            return [own], [thread.id]
        return stretch.groups, [t.id for t in stretch.threads]

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        if not thread.text_messages():
            return "no text message"
        stretch = self._stretches.get(thread.line)
        if stretch is not None and stretch.taken:
            return STRETCH_TAKEN
        if sum(map(len, self.conversation(thread)[0])) < self.min_messages:
            return f"conversation shorter than {self.min_messages} messages"
        return None

    @staticmethod
    def _most_central(lines: list[str], vectors: list[dict], shared: list[float], points: int) -> list[int]:
        """A conversation's ``points`` most central messages. An earlier message wins a tie: the later ones
        answer it, and its opening states the subject, so replies that repeat no word of it are summed up by
        how it starts."""
        picked: list[int] = []
        for i in sorted((i for i in range(len(lines)) if vectors[i]), key=lambda i: -shared[i]):
            if len(picked) == points:
                break
            if all(lines[i] != lines[j] for j in picked):  # a repeated message says nothing new
                picked.append(i)
        return picked

    def share_a_subject(self, words: Collection[str], others: Collection[str]) -> bool:
        """Whether two feed posts, by their content words, are on one subject: they share ``feed_min_shared``
        words, one of them rarer than ``feed_rare_zipf`` in general English."""
        common = set(words).intersection(others)
        return len(common) >= self.feed_min_shared and any(zipf(word) < self.feed_rare_zipf for word in common)

    def _subject(self, lines: list[str], vectors: list[dict], shared: list[float], points: int) -> list[int] | str:
        """The posts a feed's answer quotes, or why there are none.

        The posts of a feed are separate, so their order says nothing about them, and picking by position would
        teach "quote the first posts". Two posts are on one subject when they share ``feed_min_shared`` content
        words, one of them rare (``share_a_subject``): one shared word is no shared subject ("Social Security"
        and "security teams", Mark Carney and Mark Madsen), nor are two common ones ("canada" and "final" link
        a tennis final to a football scandal). The answer is one subject: of the groups of posts linked so, the
        one with the most centrality in all (summed TF-IDF cosine), at most ``points`` of its most central
        posts, each sharing a subject with another quoted post. Quoting the most central posts across groups
        would quote a post without the one it shares its subject with, beside an unrelated pair. Groups, or
        posts at the cut, that tie are all left out.
        """
        words = [vector.keys() for vector in vectors]
        nodes = [i for i in range(len(lines)) if shared[i] > 0 and lines[i] not in lines[:i]]  # a repeat is no new post

        def linked(i: int, j: int) -> bool:
            return self.share_a_subject(words[i], words[j])

        groups, seen = [], set()
        for start in nodes:
            if start in seen:
                continue
            group, frontier = [], [start]
            seen.add(start)
            while frontier:
                i = frontier.pop()
                group.append(i)
                for j in nodes:
                    if j not in seen and linked(i, j):
                        seen.add(j)
                        frontier.append(j)
            if len(group) > 1:
                groups.append((round(sum(shared[i] for i in group), 9), group))
        if not groups:
            return self._nothing_shared
        groups.sort(key=lambda scored: -scored[0])
        if len(groups) > 1 and groups[0][0] == groups[1][0]:
            return TIED
        members = sorted(groups[0][1], key=lambda i: -shared[i])
        picked = members[:points]
        if len(members) > points and shared[picked[-1]] == shared[members[points]]:
            picked = [i for i in picked if shared[i] != shared[members[points]]]
        picked = [i for i in picked if any(linked(i, j) for j in picked if j != i)]
        return picked if len(picked) >= 2 else TIED

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        stretch = self._stretches.get(thread.line)
        if stretch is not None:  # one try per stretch: a second would show the same posts, with the same answer
            stretch.taken = True
        groups, thread_ids = self.conversation(thread)
        is_feed = len(groups) > 1
        labels: dict[str, str] = {}
        lines, blocks = [], []
        for number, group in enumerate(groups, 1):
            block = [f"{labels.setdefault(m.user, f'User_{len(labels)}')}: {one_line(m.text)}" for m in group]
            lines.extend(block)
            blocks.append(f"Post {number}:\n" + "\n".join(block))
        shown = "\n\n".join(blocks) if is_feed else "\n".join(lines)
        variant = "feed" if is_feed else "thread"
        if self.llm_answers:  # the responder writes an abstractive summary
            variant += "_llm"
            instruction, template_id = self.render(variant, draws, **{"feed" if is_feed else "conversation": shown})
            return self.row(thread, context, instruction=instruction, response="", template_id=template_id,
                            variant=variant, thread_ids=thread_ids)
        messages = [m for group in groups for m in group]
        vectors = tfidf_vectors([m.text for m in messages], context.stats)
        centroid: dict[str, float] = {}  # the sum of the vectors: the mean's direction, which is all a ranking needs
        for vector in vectors:
            for term, weight in vector.items():
                centroid[term] = centroid.get(term, 0.0) + weight
        if not centroid:
            return "no content words in the conversation"
        # A message is as central as what it shares with the others: its cosine to each other message, summed
        # (its dot product with the centroid, less its own unit length). Rounded, so equal scores tie exactly
        # instead of by rounding noise, and the stable sort keeps them in time order.
        shared = [round(sum(weight * (centroid[term] - weight) for term, weight in vector.items()), 9)
                  for vector in vectors]
        points = min(self.max_points, (len(messages) + 1) // 2)
        if is_feed:
            picked = self._subject(lines, vectors, shared, points)
            if isinstance(picked, str):
                return picked
        else:
            picked = self._most_central(lines, vectors, shared, points)
            if len(picked) < 2:
                return TOO_FEW
        picked.sort()
        instruction, template_id = self.render(variant, draws, count=len(picked),
                                               **{"feed" if is_feed else "conversation": shown})
        return self.row(thread, context, instruction=instruction, response="\n".join(lines[i] for i in picked),
                        template_id=template_id, variant=variant, thread_ids=thread_ids)
