"""The records that flow through the pipeline: read → thread → row.

Slotted dataclasses, so a cluster of threads costs little memory and a typo'd attribute fails loudly. Thread
and Message are read-only by convention but not ``frozen``: a frozen __init__ sets each field through
object.__setattr__, which makes building them several times slower, and a Thread and its Messages are built
for every line read (figures: README, "Why the hot path is shaped so").
"""

from __future__ import annotations

from dataclasses import dataclass, field

NOT_LOOKED_UP = ...  # a Thread's remembered lookups before they ran (Ellipsis: a singleton that survives pickling)

# Every action key either BluePrint shape can carry. The released files use `post`/`reply`; the
# intermediate (raw) files use `ignore`/`profile_update` instead. Order is the release's, then the rest.
ACTION_KEYS = (
    "like", "unlike", "repost", "unrepost", "follow", "unfollow", "block", "unblock",
    "post_update", "post_delete", "quote", "post", "reply", "ignore", "profile_update",
)
# The keys of each shape's `actions` object, in the order its files list them.
RELEASED_ACTION_KEYS = ACTION_KEYS[:13]
RAW_ACTION_KEYS = ("like", "unlike", "repost", "unrepost", "follow", "unfollow", "block", "unblock", "post_update",
                   "post_delete", "profile_update", "quote", "ignore")


@dataclass(slots=True)
class Message:
    """One message of a thread.

    Args:
        user: the (pseudonymous) user id.
        time: relative time from the file (`relative_integer_time` or `unix_epoch`), else the position.
        text: the message text, or None for an action-only message (a like, a follow …).
        actions: the names of the actions that are true, in ACTION_KEYS order; None when the message has
            no `actions` field at all.
    """

    user: str
    time: float
    text: str | None
    actions: tuple[str, ...] | None


@dataclass(slots=True)
class Thread:
    """One line of a cluster file.

    Args:
        id: the record's `id`, or `<cluster>:<line>` for shapes that have none.
        cluster: the cluster key, the file name without its extension (``cluster_3``).
        line: the 1-based line number in the file, for lineage and rejects.
        messages: the messages in file order.
        fields: the other top-level keys of an object-shaped record (``id``, ``cluster_id``, a label field
            such as ``vote`` …), the parsed dict itself rather than a copy; ``{}`` for the list shape. Not
            compared, so two threads are equal exactly as before.
        raw_shape: the record is a bare list of messages (the intermediate shape), whose actions are
            RAW_ACTION_KEYS, not the release's RELEASED_ACTION_KEYS.
    """

    id: str
    cluster: str
    line: int
    messages: tuple[Message, ...]
    fields: dict = field(default_factory=dict, compare=False)
    _anchor: Message | None = field(default=NOT_LOOKED_UP, init=False, repr=False, compare=False)
    raw_shape: bool = field(default=False, compare=False)
    # The anchor post's word analysis (text.PostWords, or None without an anchor), kept by
    # tasks.base.anchor_post_words: every post task asks for it when the thread is offered and again to build.
    anchor_words: object = field(default=NOT_LOOKED_UP, init=False, repr=False, compare=False)

    def action_keys(self) -> tuple[str, ...]:
        """The keys of this record's shape's `actions` object."""
        return RAW_ACTION_KEYS if self.raw_shape else RELEASED_ACTION_KEYS

    def text_messages(self) -> list[Message]:
        return [m for m in self.messages if m.text]

    def anchor_post(self) -> Message | None:
        """The post a persona task is built on: the last message that has text.

        Looked up once: every task asks for it when the thread is offered (four or five times a thread with
        preset=paper), and remembering it is cheaper than walking the messages again.
        """
        anchor = self._anchor
        if anchor is NOT_LOOKED_UP:
            anchor = None
            for message in reversed(self.messages):
                if message.text:
                    anchor = message
                    break
            self._anchor = anchor
        return anchor


@dataclass(slots=True)
class Row:
    """One instruction row, before it is put in an output format.

    Args:
        task: the name of the task (its key in the `tasks` config) or ``dolly``.
        instruction: the rendered prompt (for task rows it holds everything the model sees).
        response: the target answer, taken from the data (or, later, an LLM).
        context: a separate context, as Dolly rows have; empty for task rows.
        meta: lineage, one fixed set of keys for every row (see ``row_meta``).
        reply_json: the response already is the JSON object BluePrint's assistant turns hold (next_action:
            ``{"actions": {key: bool …}, "text": …}``), so the ``blueprint`` format writes it as it is; plain
            text (False) is wrapped as ``{"text": response}``.
        backtranslation: for a row whose *instruction* the LLM responder writes (topic_post with an LLM):
            ``{"question": what the model is asked, "template": the template its answer fills,
            "slot": the placeholder it fills}``; None otherwise. See responders/backtranslation.py.
    """

    task: str
    instruction: str
    response: str
    context: str = ""
    meta: dict = field(default_factory=dict)
    reply_json: bool = False
    backtranslation: dict | None = None


def row_meta(
    *,
    task: str,
    cluster: str,
    split: str,
    source: str,
    template_id: str | None = None,
    variant: str | None = None,
    thread_id: str | None = None,
    thread_ids: list[str] | None = None,
    line: int | None = None,
    needle_depths: list[float] | None = None,
    split_point: int | None = None,
    response_source: str = "data",
    instruction_source: str = "data",
) -> dict:
    """Lineage of a row. Every row has every key (None where it does not apply), so Arrow-based readers
    (HF `datasets`) infer one schema for the whole file. ``response_source`` and ``instruction_source`` say
    who wrote each side: ``data`` (taken from the data, or a bundled template filled from it) or ``llm`` (the
    responder: an LLM response, or an instruction backtranslated from a real post)."""
    return {
        "task": task,
        "variant": variant,
        "template_id": template_id,
        "cluster": cluster,
        "thread_id": thread_id,
        "thread_ids": thread_ids if thread_ids is not None else ([thread_id] if thread_id else []),
        "line": line,
        "split": split,
        "source": source,
        "response_source": response_source,
        "instruction_source": instruction_source,
        "needle_depths": needle_depths or [],
        "split_point": split_point,
    }
