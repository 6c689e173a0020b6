"""Turn one line of a cluster file into a Thread, or say exactly why it cannot be used.

Both shapes found in the wild are accepted (see ../shared/data/README.md):
- released: ``{"thread": [message, …], "cluster_id": int, "id": str}``
- raw (intermediate): a bare JSON list of messages, with ``actions`` as a JSON *string*.
"""

from __future__ import annotations

import math
from itertools import compress

import orjson

from instruct.records import ACTION_KEYS, Message, Thread

_BOM = b"\xef\xbb\xbf"
_ACTION_SET = frozenset(ACTION_KEYS)
_ACTION_ORDER = {key: index for index, key in enumerate(ACTION_KEYS)}
_TIME_KEYS = ("relative_integer_time", "unix_epoch")
_TIME_LIMIT = 2**63
_TIME_MIN = -_TIME_LIMIT
_ABSENT = object()
_BOOL_ONLY = frozenset({bool})
_ACTIONS_BY_TEXT: dict[bytes, tuple[str, ...]] = {}  # see _known_actions
_ACTIONS_BY_RAW_TEXT: dict[str, tuple[str, ...]] = {}  # see _known_raw_actions
_ACTIONS_REMEMBERED = 4096  # at most this many texts (the released key set has 2**13 true/false combinations)


class Reject(ValueError):
    """A line that cannot be used; the message is the reason written to rejects.jsonl."""


def parse_thread(raw: bytes, *, cluster: str, line: int) -> Thread:
    """Parse one line (with or without its newline) into a Thread, or raise Reject with the reason."""
    try:
        # The line goes to orjson as it is: a trailing newline is JSON whitespace, and orjson refuses a BOM, so
        # normalising every line first would cost a copy per line only to reach the same result.
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        record = _load_refused(raw)

    if type(record) is dict:
        # The rest of the record is kept as parsed (no copy) for tasks that read a record-level field;
        # popping the message list lets it be freed once the messages are built.
        items = record.pop("thread", None)
        if type(items) is not list:
            raise Reject("object has no 'thread' list")
        thread_id = record.get("id", _ABSENT)
        if thread_id is _ABSENT:
            thread_id = f"{cluster}:{line}"
        elif not isinstance(thread_id, str) or not thread_id:
            raise Reject("'id' must be a non-empty string")
        fields = record
    elif type(record) is list:
        items, thread_id, fields = record, f"{cluster}:{line}", None
    else:
        raise Reject(f"expected a JSON list of messages or an object with a 'thread' list, got {type(record).__name__}")
    if not items:
        raise Reject("empty thread")
    # A plain loop, not tuple(map(_parse_message, items, range(…))): calls from C to a Python function cost
    # more than calls from bytecode.
    messages = []
    position = 0
    for item in items:
        messages.append(_parse_message(item, position))
        position += 1
    # Positional arguments: a keyword call costs more per record.
    if fields is None:  # the bare-list (raw) shape
        return Thread(thread_id, cluster, line, tuple(messages), {}, True)
    return Thread(thread_id, cluster, line, tuple(messages), fields)


def _load_refused(raw: bytes) -> object:
    """A line orjson refused as it is: a line after a UTF-8 BOM, or blank, or invalid JSON (the decoder's
    message is for the line without its BOM and line ending, so the position it names is what a reader sees)."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    raw = raw.rstrip(b"\r\n")
    if not raw.strip():
        raise Reject("blank line")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Reject(f"invalid JSON: {exc}") from None


def _parse_message(item: object, position: int) -> Message:
    """The fast path for a well-formed message (most of them): every check in one pass with few calls. It
    returns only what ``_check_message`` would return; anything unusual is left to that careful path, which
    gives the reject reason."""
    if type(item) is dict:
        user, text, flags = item.get("user_id"), item.get("text"), item.get("actions", _ABSENT)
        relative, epoch = item.get("relative_integer_time", _ABSENT), item.get("unix_epoch", _ABSENT)
        time = epoch if relative is _ABSENT else relative if epoch is _ABSENT else None
        if (type(user) is str and user and (text is None or type(text) is str)
                and (type(time) is int and _TIME_MIN <= time <= _TIME_LIMIT or time is _ABSENT)):
            if flags is _ABSENT:
                actions = None
            else:
                kind = type(flags)
                actions = (_known_actions(flags) if kind is dict else _known_raw_actions(flags) if kind is str
                           else None)
                if actions is None:
                    return _check_message(item, position)
            if (text and not text.isspace()) or actions:
                return Message(user, position if time is _ABSENT else time, text or None, actions)
    return _check_message(item, position)


def _known_actions(flags: dict) -> tuple[str, ...] | None:
    """The true keys of a well-formed ``actions`` object, in ACTION_KEYS order; None for anything unusual.

    Remembered by the object's exact JSON text: a released file repeats a handful of them (13 keys, mostly one
    true), and one ``orjson.dumps`` and a lookup cost a fraction of checking the keys and the value types and
    picking the true keys. The text is exact: a flag of 1 or 1.0 is written
    differently from true, and another key order or key is another text, checked on its own.
    """
    try:
        text = orjson.dumps(flags)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: not a flags object anyway
        return None
    actions = _ACTIONS_BY_TEXT.get(text)
    if actions is None and _ACTION_SET.issuperset(flags) and _BOOL_ONLY.issuperset(map(type, flags.values())):
        actions = tuple(sorted(compress(flags, flags.values()), key=_ACTION_ORDER.__getitem__))
        if len(_ACTIONS_BY_TEXT) < _ACTIONS_REMEMBERED:
            _ACTIONS_BY_TEXT[text] = actions
    return actions


def _known_raw_actions(text: str) -> tuple[str, ...] | None:
    """The true keys of a well-formed ``actions`` JSON string (the intermediate shape); None for anything the
    careful path must explain. Remembered by the exact string, as ``_known_actions`` remembers objects: a raw
    file repeats a handful of them."""
    actions = _ACTIONS_BY_RAW_TEXT.get(text)
    if actions is None:
        try:
            actions = _parse_actions(text, 0)
        except Reject:
            return None
        if len(_ACTIONS_BY_RAW_TEXT) < _ACTIONS_REMEMBERED:
            _ACTIONS_BY_RAW_TEXT[text] = actions
    return actions


def _check_message(item: object, position: int) -> Message:
    # The reason string is built only for a reject: this runs for every unusual message.
    if not isinstance(item, dict):
        raise Reject(f"message {position}: expected an object, got {type(item).__name__}")
    user = item.get("user_id")
    if not isinstance(user, str) or not user:
        raise Reject(f"message {position}: 'user_id' must be a non-empty string")
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise Reject(f"message {position}: 'text' must be a string, got {type(text).__name__}")
    actions = item.get("actions")
    actions = None if actions is None and "actions" not in item else _parse_actions(actions, position)
    if not (text and not text.isspace()) and not actions:
        raise Reject(f"message {position}: has neither text nor a true action")
    return Message(user=user, time=_parse_time(item, position), text=text or None, actions=actions)


def _parse_actions(value: object, position: int) -> tuple[str, ...]:
    if isinstance(value, str):  # the raw shape stores the dict as a JSON string
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise Reject(f"message {position}: 'actions' is a string but not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Reject(f"message {position}: 'actions' must be an object, got {type(value).__name__}")
    # One pass for the common case (known keys, real booleans); anything else takes the careful path below.
    true = [key for key, flag in value.items() if flag is True]
    if len(value) - len(true) != sum(1 for flag in value.values() if flag is False) or not value.keys() <= _ACTION_SET:
        unknown = sorted(set(value) - _ACTION_SET)
        if unknown:
            raise Reject(f"message {position}: unknown action key(s) {unknown}")
        for key, flag in value.items():
            if not isinstance(flag, bool):
                raise Reject(f"message {position}: action '{key}' must be true or false, got {type(flag).__name__}")
    if len(true) > 1:
        true.sort(key=_ACTION_ORDER.__getitem__)
    return tuple(true)


def _parse_time(item: dict, position: int) -> float:
    found = _ABSENT
    # Every time key present is checked, not just the first: a message with a good relative_integer_time and
    # a garbage unix_epoch is a broken record, not a good one.
    for key in _TIME_KEYS:
        value = item.get(key, _ABSENT)
        if type(value) is int and _TIME_MIN <= value <= _TIME_LIMIT:  # the common case, checked first
            pass
        elif value is not _ABSENT:
            # bool is an int subclass; a time of `true` is a wrong type, not 1.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Reject(f"message {position}: '{key}' must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or abs(value) > _TIME_LIMIT:
                raise Reject(f"message {position}: '{key}' is out of range")
        else:
            continue
        if found is _ABSENT:
            found = value
    return position if found is _ABSENT else found
