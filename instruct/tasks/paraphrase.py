"""Paraphrase: the prompt shows one real post, the response is another real post that says much the same.

Pairs are mined offline inside each chunk (CHUNK_LINES consecutive lines of a cluster file, fixed by the
file, so the pairs do not depend on sharding or on the worker count): two posts of different threads, with
different text, whose TF-IDF cosine (cluster IDF) is at least ``min_cosine`` while their word overlap
(Jaccard of the lowercased word sets) is at most ``max_overlap`` — similar meaning, different wording. A
post without such a partner is declined ("no paraphrase partner") rather than given a poor one; the
manifest's ``eligible`` count for this task is the number of posts that found a partner.

Both posts of a pair are in the same split, so a pair never leaks a thread across train and validation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import Slots
from instruct.text import ClusterStats, words
from instruct.tfidf import pair_similarity


class Partner(NamedTuple):
    thread: Thread
    cosine: float
    overlap: float


def jaccard(first: set[str], second: set[str]) -> float:
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def word_overlap(a: str, b: str) -> float:
    """Jaccard similarity of the lowercased word sets of two texts."""
    return jaccard({w.lower() for w in words(a)}, {w.lower() for w in words(b)})


class ParaphraseTask(Task):
    """Near-paraphrase pairs mined inside a chunk.

    Args:
        weight: relative chance of being drawn.
        min_cosine: a pair's TF-IDF cosine must be at least this.
        max_overlap: a pair's word overlap (Jaccard of lowercased word sets) must be at most this; it
            keeps copies, reposts and lightly edited duplicates out.
        min_shared: the posts must share at least this many content words, so two short posts that share
            one rare word ("thank you!") are not taken for paraphrases.
    """

    template_file = "paraphrase"
    slots = {"default": Slots.of("post")}
    uses_stats = True

    bounds = {"min_cosine": (0, 1), "max_overlap": (0, 1), "min_shared": (1, None)}

    def __init__(self, weight: float = 1.0, min_cosine: float = 0.3, max_overlap: float = 0.6, min_shared: int = 3):
        super().__init__(weight)
        if not 0 < min_cosine <= 1 or not 0 <= max_overlap <= 1:
            raise ValueError("paraphrase needs 0 < min_cosine <= 1 and 0 <= max_overlap <= 1")
        if min_shared < 1:
            raise ValueError("paraphrase needs min_shared >= 1")
        self.min_cosine = min_cosine
        self.max_overlap = max_overlap
        self.min_shared = min_shared
        self._partners: dict[tuple[str, int], Partner] = {}

    def begin_chunk(self, context: TaskContext) -> None:
        """Find each post's partner among the posts of the chunk in the same split."""
        self._partners = {}
        by_split: dict[str, list[Thread]] = {}
        for thread in context.chunk:
            if thread.anchor_post() is not None:
                by_split.setdefault(context.split_of(thread.id), []).append(thread)
        for threads in by_split.values():
            self._partners.update(self.mine(threads, context.stats))

    def mine(self, threads: list[Thread], stats: ClusterStats) -> dict[tuple[str, int], Partner]:
        """Each thread's best partner (highest cosine, then earliest in the list), keyed by (cluster, line).

        Args:
            threads: threads with a text message, in file order.
            stats: the cluster statistics the IDF comes from.
        """
        texts = [thread.anchor_post().text for thread in threads]
        first, second, cosine, shared = pair_similarity(texts, stats)
        close = (cosine >= self.min_cosine) & (shared >= self.min_shared)
        first, second, cosine = first[close], second[close], cosine[close]
        # Both directions (a post's partner may come before or after it), walked by post then candidate, so on
        # equal cosines the earlier candidate stays the partner.
        posts, candidates = np.concatenate([first, second]), np.concatenate([second, first])
        order = np.lexsort((candidates, posts))
        word_sets: dict[int, set[str]] = {}
        normalised = [" ".join(text.lower().split()) for text in texts]
        best: dict[int, tuple[float, int, float]] = {}
        for i, j, value in zip(posts[order].tolist(), candidates[order].tolist(),
                               np.concatenate([cosine, cosine])[order].tolist()):
            if threads[i].id == threads[j].id or normalised[i] == normalised[j]:
                continue
            if i in best and value <= best[i][0]:
                continue
            for k in (i, j):
                if k not in word_sets:
                    word_sets[k] = {w.lower() for w in words(texts[k])}
            overlap = jaccard(word_sets[i], word_sets[j])
            if overlap <= self.max_overlap:
                best[i] = (value, j, overlap)
        return {(threads[i].cluster, threads[i].line): Partner(threads[j], round(value, 4), round(overlap, 4))
                for i, (value, j, overlap) in best.items()}

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        if thread.anchor_post() is None:
            return "no text message"
        if (thread.cluster, thread.line) not in self._partners and not self.llm_answers:
            return "no paraphrase partner"
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        partner = self._partners.get((thread.cluster, thread.line))
        instruction, template_id = self.render("default", draws, post=thread.anchor_post().text)
        if self.llm_answers:  # the responder writes the paraphrase, partner or not
            return self.row(thread, context, instruction=instruction, response="", template_id=template_id,
                            variant="default")
        return self.row(thread, context, instruction=instruction, response=partner.thread.anchor_post().text,
                        template_id=template_id, variant="default", thread_ids=[thread.id, partner.thread.id])
