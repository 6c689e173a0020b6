"""Next action, BluePrint's own task: given a thread so far, what does its last user do, and with what text?"""

from __future__ import annotations

import orjson

from instruct.records import ACTION_KEYS, Message, Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import ONE_THREAD, Slots

ACTS_ON_NOTHING = "acts on nothing: no earlier message and no text"
# The answer's shape, which every template must describe: actions as an object of booleans, text left out
# when there is none (BluePrint's reply object), never the list form or a null text.
SAYS_SHAPE = ('"actions": {', '"text"')
NOT_THE_SHAPE = ('"actions": [', "a list", "null")


class NextActionTask(Task):
    """Thread context → the action(s) the last message records, and its text.

    The prompt shows every message but the last, one per line, users relabelled ``User_0, User_1 …`` in
    order of first appearance (the last user gets a label too, possibly one already in the context)::

        User_0: the post being replied to
        User_1: [like]                      # an action-only message shows its true actions in brackets

    It names the acting user ({user}) and the actions to choose from ({action_list}).

    Response: BluePrint's own reply object, as compact JSON, in every output format::

        {"actions":{"like":false,…,"reply":true,…},"text":"the reply's text"}
        {"actions":{"like":false,"follow":true,…}}

    ``actions`` maps every listed option, in the listed order, to whether the last message did it (usually
    one true); ``text`` is the last message's text verbatim, left out when it has none (a like, a follow …),
    as BluePrint's replies leave it out. Every template describes this shape (its lint says ``"actions": {``,
    never ``"actions": [`` or ``null``), so no format's answer contradicts its prompt.

    A one-message thread (a ``post`` in the released shape) has no context: it gets the ``new_post``
    templates, which say that the user starts a new post with nothing before it (no "thread above"), and the
    answer is ``{"actions":{…,"post":true,…},"text":<the post>}``, i.e. the model learns what this persona posts
    unprompted. A one-message thread with no text (a like, follow or repost of nothing shown) is declined:
    there is nothing to predict it from. Threads whose last message has no ``actions`` field (raw-shape posts
    and replies carry only text) are declined: their action was never recorded.

    Args:
        weight: relative chance of being drawn.
        actions: the options listed in the prompt, in this order; null = the keys of the thread's own shape
            (``records.RELEASED_ACTION_KEYS`` or ``RAW_ACTION_KEYS``: only the raw shape has ``ignore`` and
            ``profile_update``, only the release ``post`` and ``reply``). A thread whose true actions are not
            all listed is declined.
        max_context_messages: the context shows at most this many of the latest earlier messages, with a
            first line saying how many were left out.
    """

    template_file = "next_action"
    slots = {"thread": Slots.of("context", "user", "action_list", must_say_all=SAYS_SHAPE,
                                must_not_say=NOT_THE_SHAPE),
             # Nothing is shown: a template that points at a thread or context would promise what is not there.
             "new_post": Slots.of("user", "action_list", must_say=("new post",), must_say_all=SAYS_SHAPE,
                                  must_not_say=ONE_THREAD + ("above", "below", "so far") + NOT_THE_SHAPE)}

    bounds = {"max_context_messages": (1, None)}

    def __init__(self, weight: float = 1.0, actions: list[str] | None = None, max_context_messages: int = 30):
        super().__init__(weight)
        self.actions = list(actions) if actions else None  # None: each thread's shape's keys
        unknown = sorted(set(self.actions or ()) - set(ACTION_KEYS))
        if unknown:
            raise ValueError(f"next_action.actions: unknown action(s) {unknown}; known: {list(ACTION_KEYS)}")
        if max_context_messages < 1:
            raise ValueError("next_action needs max_context_messages >= 1")
        self.max_context_messages = max_context_messages

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        actions = thread.messages[-1].actions
        if actions is None:
            return "last message has no actions field"
        if not actions:
            return "last message has no true action"
        if not set(actions) <= set(self.actions or thread.action_keys()):
            return "action not among the listed options"
        if len(thread.messages) == 1 and not thread.messages[0].text:
            return ACTS_ON_NOTHING
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        last = thread.messages[-1]
        earlier = thread.messages[:-1]
        shown = earlier[-self.max_context_messages:]
        labels: dict[str, str] = {}
        lines = [f"{self._label(labels, m.user)}: {self._content(m)}" for m in shown]
        if len(shown) < len(earlier):
            lines.insert(0, f"({len(earlier) - len(shown)} earlier messages not shown)")
        options = ", ".join(self.actions or thread.action_keys())
        if lines:
            variant = "thread"
            instruction, template_id = self.render(variant, draws, context="\n".join(lines),
                                                   user=self._label(labels, last.user), action_list=options)
        else:
            variant = "new_post"
            instruction, template_id = self.render(variant, draws, user=self._label(labels, last.user),
                                                   action_list=options)
        reply: dict = {"actions": {key: key in last.actions for key in self.actions or thread.action_keys()}}
        if last.text is not None:
            reply["text"] = last.text
        row = self.row(thread, context, instruction=instruction, response=orjson.dumps(reply).decode(),
                       template_id=template_id, variant=variant)
        row.reply_json = True
        return row

    @staticmethod
    def _label(labels: dict[str, str], user: str) -> str:
        return labels.setdefault(user, f"User_{len(labels)}")

    @staticmethod
    def _content(message: Message) -> str:
        return message.text if message.text else f"[{', '.join(message.actions or ())}]"
