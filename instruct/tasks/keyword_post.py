"""Keyword post: write a post that contains given keywords; the response is the real post."""

from __future__ import annotations

from bisect import bisect
from itertools import accumulate, compress
from typing import Sequence, TypeVar

from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext, anchor_post_words
from instruct.templates import Slots
from instruct.text import PostWords, filler_words, post_words

T = TypeVar("T")


def weighted_sample(items: Sequence[T], weights: Sequence[float], count: int, draws: Draws) -> list[T]:
    """``count`` distinct items (``count <= len(items)``) drawn one after another, each with chance proportional
    to its weight among the items left (weights > 0).

    Every draw is made from the weights of all items, and one that lands on an item already picked is drawn
    again: given that it lands elsewhere, each item left is hit in proportion to its weight, so this is the
    same distribution as removing picked items, without summing the weights again after each pick (numpy's
    choice(p=…) is far slower for a handful of items). Redraws stay few
    for keyword weights: idfs differ by a factor of at most 1 + log(documents), ~9 for 2000 posts.
    """
    if not 0 <= count <= len(items):
        raise ValueError(f"cannot draw {count} distinct items from {len(items)}")
    cumulative = list(accumulate(weights))
    total, last = cumulative[-1] if cumulative else 0.0, len(cumulative) - 1
    picked: dict[int, None] = {}  # a dict, not a set: the picks in the order drawn
    while len(picked) < count:
        # hi: the last item takes everything past the one before it, even u * total rounded up to total.
        picked[bisect(cumulative, draws.uniform() * total, 0, last)] = None
    return [items[index] for index in picked]


class KeywordPostTask(Task):
    """Pick 1–``max_keywords`` content words of a post, favouring words rare in the cluster (chance
    proportional to IDF), so the prompt names what is specific about the post, not its filler.

    Keywords are content words (``text.content_words``: no stopword, contraction, number, handle or link),
    case-normalised (shouting and mIxEd case lowercased), and below ``max_zipf`` in general English
    (wordfreq), so filler such as "time", "people" or "good" is never asked for. One keyword gets the
    ``one`` templates ("contains the word {keyword}"), several the ``several`` ones.

    Args:
        weight: relative chance of being drawn.
        max_keywords: at most this many keywords (the count is uniform in 1..min(max, candidates)).
        max_zipf: words this frequent in general English (Zipf scale) are filler, never keywords.
        min_words: posts with fewer words are declined (too little to write from).
    """

    template_file = "keyword_post"
    slots = {"one": Slots.of("keyword"), "several": Slots.of("keywords")}
    uses_stats = True

    bounds = {"max_keywords": (1, None), "max_zipf": (0, 8), "min_words": (1, None)}

    def __init__(self, weight: float = 1.0, max_keywords: int = 5, max_zipf: float = 5.8, min_words: int = 5):
        super().__init__(weight)
        if max_keywords < 1:
            raise ValueError("keyword_post needs max_keywords >= 1")
        if not 0 < max_zipf <= 8:
            raise ValueError("keyword_post needs 0 < max_zipf <= 8")
        self.max_keywords = max_keywords
        self.max_zipf = max_zipf
        self.min_words = min_words
        self._filler = filler_words(max_zipf)

    def candidates(self, text: str) -> tuple[list[str], list[str]]:
        """The post's keyword candidates as written (case-normalised) and lowercased."""
        written, lowered = self._candidates(post_words(text))
        return list(written), list(lowered)

    def _candidates(self, analysis: PostWords) -> tuple[tuple[str, ...], tuple[str, ...]]:
        written, lowered = analysis.content, analysis.content_lower
        filler = self._filler
        if filler.isdisjoint(lowered):  # most posts: no filler among their content words
            return written, lowered
        kept = [word not in filler for word in lowered]
        return tuple(compress(written, kept)), tuple(compress(lowered, kept))

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        analysis = anchor_post_words(thread, self.min_words)
        if isinstance(analysis, str):
            return analysis
        return None if analysis.has_content_words() else "no content words"

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        text = thread.anchor_post().text
        candidates, lowered = self._candidates(anchor_post_words(thread, self.min_words))
        if not candidates:
            return "only filler words"
        count = draws.between(1, min(self.max_keywords, len(candidates)))
        keywords = weighted_sample(candidates, context.stats.idfs(lowered), count, draws)
        if count == 1:
            instruction, template_id = self.render("one", draws, keyword=keywords[0])
        else:
            instruction, template_id = self.render("several", draws, keywords=", ".join(keywords))
        return self.row(thread, context, instruction=instruction, response=text, template_id=template_id,
                        variant="one" if count == 1 else "several")
