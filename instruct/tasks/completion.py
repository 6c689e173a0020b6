"""Completion: the prompt shows the beginning of a real post, the response is the rest of it.

Templates that ask to bring the post "to a natural end" (the ``to_end`` variant) are used only for posts
that end like a sentence (``.``, ``!``, ``?``, ``…``, maybe followed by a closing quote or bracket); a post
that stops mid-thought, or on a link, gets the ``default`` templates only.
"""

from __future__ import annotations

import re

from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext, anchor_post_words, post_decline_reason
from instruct.templates import Slots

_SENTENCE_END = re.compile(r"[.!?…]['\"’”)\]]*$")


def ends_like_a_sentence(text: str) -> bool:
    return _SENTENCE_END.search(text.rstrip()) is not None


class CompletionTask(Task):
    """Split a post at a word boundary; beginning + response reproduce the post's words exactly.

    Args:
        weight: relative chance of being drawn.
        min_words: posts shorter than this are declined.
        min_side: at least this many words stay on each side of the split.
    """

    template_file = "completion"
    # Any post may be cut mid-thought, so only ``to_end`` templates may promise an ending.
    slots = {"default": Slots.of("beginning", must_not_say=("natural end", "to its end", "last sentence")),
             "to_end": Slots.of("beginning")}

    bounds = {"min_words": (2, None), "min_side": (1, None)}

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
        split_word = draws.between(self.min_side, anchor_post_words(thread, self.min_words).count - self.min_side)
        # Cut on the original string so line breaks inside the post survive on either side: what follows the
        # first split_word words, as split() leaves it, is the post from the start of word split_word on.
        rest = text.split(maxsplit=split_word)[split_word]
        beginning = text[: len(text) - len(rest)].rstrip()
        rest = rest.strip()
        variant = "default"
        if ends_like_a_sentence(text):  # every template fits: draw one of all of them uniformly
            default, to_end = len(self._templates["default"]), len(self._templates["to_end"])
            variant = "to_end" if draws.uniform() * (default + to_end) >= default else "default"
        instruction, template_id = self.render(variant, draws, beginning=beginning)
        return self.row(thread, context, instruction=instruction, response=rest, template_id=template_id,
                        variant=variant, split_point=split_word)
