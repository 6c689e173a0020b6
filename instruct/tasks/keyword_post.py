"""Keyword post: write a post that contains given keywords; the response is the real post."""

from __future__ import annotations

from bisect import bisect
from itertools import accumulate
from typing import Sequence, TypeVar

from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext, post_decline_reason
from instruct.templates import Slots
from instruct.text import post_words

T = TypeVar("T")


def weighted_sample(items: Sequence[T], weights: list[float], count: int, draws: Draws) -> list[T]:
    """``count`` distinct items drawn one after another, each with chance proportional to its weight among
    the items left (weights > 0; ``weights`` is used up). One uniform per item drawn: ~3 µs for a post's
    keywords, against ~5 µs for one key per candidate and a sort (Efraimidis–Spirakis), numpy's choice(p=…)
    ~30 µs."""
    items = list(items)
    picked = []
    for _ in range(count):
        cumulative = list(accumulate(weights))
        # hi: the last item takes everything past the one before it, even u * total rounded up to total.
        index = bisect(cumulative, draws.uniform() * cumulative[-1], 0, len(cumulative) - 1)
        picked.append(items.pop(index))
        weights.pop(index)
    return picked


class KeywordPostTask(Task):
    """Pick 1–``max_keywords`` content words of a post, favouring words rare in the cluster (chance
    proportional to IDF), so the prompt names what is specific about the post, not its filler.

    Args:
        weight: relative chance of being drawn.
        max_keywords: at most this many keywords (the count is uniform in 1..min(max, candidates)).
        min_words: posts with fewer words are declined (too little to write from).
    """

    template_file = "keyword_post"
    slots = {"default": Slots.of("keywords")}
    uses_stats = True

    def __init__(self, weight: float = 1.0, max_keywords: int = 5, min_words: int = 5):
        super().__init__(weight)
        if max_keywords < 1:
            raise ValueError("keyword_post needs max_keywords >= 1")
        self.max_keywords = max_keywords
        self.min_words = min_words

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        reason = post_decline_reason(thread, self.min_words)
        if reason:
            return reason
        if not post_words(thread.anchor_post().text).has_content_words():
            return "no content words"
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        text = thread.anchor_post().text
        analysis = post_words(text)
        candidates = analysis.content
        count = draws.between(1, min(self.max_keywords, len(candidates)))
        keywords = weighted_sample(candidates, context.stats.idfs(analysis.content_lower), count, draws)
        instruction, template_id = self.render("default", draws, keywords=", ".join(keywords))
        return self.row(thread, context, instruction=instruction, response=text, template_id=template_id,
                        variant="default")
