"""Instruction backtranslation: the LLM writes a row's instruction, the data keeps its response.

For ``topic_post`` under an LLM responder the model is asked what a real post is about; its answer, cleaned
to a short phrase, fills the ``{topic}`` of the topic_post template drawn for the row, and the response stays
the human post (Li et al., "Self-Alignment with Instruction Backtranslation", 2023). The row's meta says so:
``instruction_source: llm``, ``response_source: data``. Refusals and empty answers are rejected by the
responder's judge as for every task; an answer that is not a short phrase, or that holds the whole post, is
rejected here.
"""

from __future__ import annotations

import re

from instruct.records import Row
from instruct.templates import Template
from instruct.text import words

# A topic is a phrase, not a paragraph: a longer answer is the model explaining, not naming.
MAX_TOPIC_WORDS = 12
NOT_A_PHRASE = "topic answer is not a short phrase"
# "Write about <the whole post>" teaches copying, not writing (a short post can be its own "topic").
REPEATS_THE_POST = "topic answer repeats the post"
_LABEL = re.compile(r"^(?:the\s+)?(?:main\s+)?topic(?:\s+of\s+this\s+post)?\s*(?:is|:)\s*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’*"


def backtranslation(question: str, template: Template, slot: str) -> dict:
    """What ``Row.backtranslation`` holds: the question the model is asked and the template its answer fills."""
    return {"question": question, "template_id": template.id, "template": template.text, "slot": slot}


def topic_phrase(answer: str) -> str | None:
    """The model's answer as a topic phrase (``Topic: "Social Security".`` → ``Social Security``), or None
    when it is not one (several lines, or more than MAX_TOPIC_WORDS words)."""
    text = answer.strip()
    if "\n" in text:
        return None
    text = _LABEL.sub("", text).strip().strip(_QUOTES).rstrip(".").strip().strip(_QUOTES).strip()
    if not text or len(text.split()) > MAX_TOPIC_WORDS:
        return None
    return text


def fill_instruction(row: Row, answer: str) -> str | None:
    """Render the row's instruction from the model's answer; None on success, else the reject reason."""
    topic = topic_phrase(answer)
    if topic is None:
        return NOT_A_PHRASE
    post = " ".join(words(row.response.lower()))
    if post and post in " ".join(words(topic.lower())):
        return REPEATS_THE_POST
    spec = row.backtranslation
    row.instruction = Template(spec["template_id"], spec["template"]).render({spec["slot"]: topic})
    row.meta["instruction_source"] = "llm"
    return None
