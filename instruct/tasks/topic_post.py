"""Topic post: write a post about a topic; the response is the real post.

The topic is what the post is about: its hashtags (as written, with ``#``), else 1–``max_words`` of its
content words that are rarest in the cluster (highest IDF; ties in random order). A topic is never just the
post's opening words — a prompt "write about Trade talks" for a post beginning "Trade talks …" teaches
copying, not writing — so a topic that would be exactly the first words of the post loses the post's first
word.
"""

from __future__ import annotations

from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext, anchor_post_words
from instruct.templates import Slots
from instruct.text import (
    NOT_PROSE,
    ClusterStats,
    hashtags,
    join_words,
    post_words,
    words,
)


def prose_words(text: str) -> list[str]:
    """The words of a text, lowercased, without handles and links: a reply that starts with ``@someone``
    still opens with the first word after it."""
    return [w.lower() for w in words(NOT_PROSE.sub(" ", text))]


def is_opening(text: str, topic_words: list[str]) -> bool:
    """Whether the topic words, in any order, are exactly the text's first words."""
    lowered = [w.lower().lstrip("#") for w in topic_words]
    return sorted(lowered) == sorted(prose_words(text)[: len(topic_words)])


class TopicPostTask(Task):
    """Name a post's topic, ask for a post about it, answer with the post.

    Args:
        weight: relative chance of being drawn.
        max_words: at most this many hashtags or topic words (the number of content words is uniform in
            1..min(max_words, candidates)).
        min_words: posts with fewer words are declined.
    """

    template_file = "topic_post"
    slots = {"default": Slots.of("topic")}
    uses_stats = True

    bounds = {"max_words": (1, None), "min_words": (1, None)}

    def __init__(self, weight: float = 1.0, max_words: int = 3, min_words: int = 5):
        super().__init__(weight)
        if max_words < 1:
            raise ValueError("topic_post needs max_words >= 1")
        self.max_words = max_words
        self.min_words = min_words

    def _hashtag_topic(self, text: str) -> list[str] | None:
        tags = [f"#{tag}" for tag in hashtags(text)[: self.max_words]]
        return tags if tags and not is_opening(text, tags) else None

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        analysis = anchor_post_words(thread, self.min_words)
        if isinstance(analysis, str):
            return analysis
        text = thread.anchor_post().text
        if self._hashtag_topic(text):
            return None
        candidates = analysis.content
        if not candidates:
            return "no hashtag or content word"
        # Content words are distinct (by lowercase), so only a single one can be all the post's first word;
        # the post's words are read only then (~3 µs of regex work saved for most posts).
        if len(candidates) == 1 and candidates[0].lower() == prose_words(text)[0]:
            return "only topic word is the post's first word"
        return None

    def topic(self, text: str, stats: ClusterStats, draws: Draws) -> list[str]:
        """The topic words of a post the task accepted: hashtags with ``#``, or content words rarest first."""
        tags = self._hashtag_topic(text)
        if tags:
            return tags
        candidates = post_words(text).content
        # Rarest first. Equally rare words (common in a small statistics sample) are shuffled first:
        # keeping post order among them would favour the post's opening words.
        ranked = sorted(draws.shuffled(candidates), key=stats.idf, reverse=True)  # stable: ties keep the shuffle
        count = draws.between(1, min(self.max_words, len(ranked)))
        topic = ranked[:count]
        if is_opening(text, topic):
            # An opening always contains the post's first word: swap it for the next rarest word, or drop
            # it when there is none.
            first = prose_words(text)[0]
            topic = [word for word in topic if word.lower() != first] + ranked[count: count + 1]
        return topic

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        text = thread.anchor_post().text
        topic = self.topic(text, context.stats, draws)
        instruction, template_id = self.render("default", draws, topic=join_words(topic))
        return self.row(thread, context, instruction=instruction, response=text, template_id=template_id,
                        variant="default")
