"""Completion: the prompt shows the beginning of a real post, the response is the rest of it."""

from __future__ import annotations

import re

from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext, post_decline_reason
from instruct.templates import Slots

_WORD_SPAN = re.compile(r"\S+")


class CompletionTask(Task):
    """Split a post at a word boundary; beginning + response reproduce the post's words exactly.

    Args:
        weight: relative chance of being drawn.
        min_words: posts shorter than this are declined.
        min_side: at least this many words stay on each side of the split.
    """

    template_file = "completion"
    slots = {"default": Slots.of("beginning")}

    def __init__(self, weight: float = 1.0, min_words: int = 10, min_side: int = 3):
        super().__init__(weight)
        if min_side < 1 or min_words < 2 * min_side:
            raise ValueError("completion needs min_side >= 1 and min_words >= 2 * min_side")
        self.min_words = min_words
        self.min_side = min_side

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        return post_decline_reason(thread, self.min_words)

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        text = thread.anchor_post().text
        spans = [m.start() for m in _WORD_SPAN.finditer(text)]
        split_word = draws.between(self.min_side, len(spans) - self.min_side)
        # Cut on the original string so line breaks inside the post survive on either side.
        beginning = text[: spans[split_word]].rstrip()
        rest = text[spans[split_word]:].strip()
        instruction, template_id = self.render("default", draws, beginning=beginning)
        return self.row(thread, context, instruction=instruction, response=rest, template_id=template_id,
                        variant="default", split_point=split_word)
