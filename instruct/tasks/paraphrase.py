"""Paraphrase: the prompt shows one real post; an LLM responder writes its paraphrase.

There is no offline answer. Mining pairs of real posts that say the same thing does not work on BluePrint
data: over the 396 distinct real posts of the sample (>= 5 words), pairs with sentence-embedding cosine
(all-MiniLM-L6-v2) >= 0.75, word overlap <= 0.5, no shared 6-word run and comparable lengths numbered one (two
golf-shot posts stating different facts); at 0.65, three, all the same subject but different posts. The 4 pairs
the earlier TF-IDF miner kept on that sample were none of them a paraphrase. So
with ``responder=none`` the task is "not applicable: needs an LLM responder": it declines every thread with
that reason and the manifest says so (``tasks.paraphrase.status``); with ``responder=…`` (and paraphrase in
``responder.tasks``) the LLM writes the paraphrase of each real post.
"""

from __future__ import annotations

from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import Slots

NEEDS_LLM = "not applicable: needs an LLM responder"


class ParaphraseTask(Task):
    """A real post -> its paraphrase, written by the LLM responder.

    Args:
        weight: relative chance of being drawn.
        min_words: posts with fewer words are declined (too little to reword).
    """

    template_file = "paraphrase"
    slots = {"default": Slots.of("post")}

    bounds = {"min_words": (1, None)}

    def __init__(self, weight: float = 1.0, min_words: int = 5):
        super().__init__(weight)
        if min_words < 1:
            raise ValueError("paraphrase needs min_words >= 1")
        self.min_words = min_words

    def describe(self) -> dict:
        status = ("the LLM responder writes each paraphrase" if self.llm_answers else
                  f"{NEEDS_LLM} (no offline answer: real posts are not paraphrases of each other; use "
                  f"responder=openai|batch with paraphrase in responder.tasks); the task makes no rows")
        return {**super().describe(), "status": status}

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        if not self.llm_answers:
            return NEEDS_LLM
        post = thread.anchor_post()
        if post is None:
            return "no text message"
        if len(post.text.split()) < self.min_words:
            return f"post shorter than {self.min_words} words"
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        instruction, template_id = self.render("default", draws, post=thread.anchor_post().text)
        return self.row(thread, context, instruction=instruction, response="", template_id=template_id,
                        variant="default")
