"""Turn one line of a cluster file into a Thread, or say exactly why it cannot be used.

Both shapes found in the wild are accepted (see ../shared/data/README.md):
- released: ``{"thread": [message, …], "cluster_id": int, "id": str}``
- raw (intermediate): a bare JSON list of messages, with ``actions`` as a JSON *string*.
"""

from __future__ import annotations

import math

import orjson

from instruct.records import ACTION_KEYS, Message, Thread

_BOM = b"\xef\xbb\xbf"
_ACTION_SET = frozenset(ACTION_KEYS)


class Reject(ValueError):
    """A line that cannot be used; the message is the reason written to rejects.jsonl."""


def parse_thread(raw: bytes, *, cluster: str, line: int) -> Thread:
    """Parse one line (without its newline) into a Thread, or raise Reject with the reason."""
    raw = raw.rstrip(b"\r\n")
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if not raw.strip():
        raise Reject("blank line")
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Reject(f"invalid JSON: {exc}") from None

    thread_id = f"{cluster}:{line}"
    if isinstance(record, list):
        items = record
    elif isinstance(record, dict):
        items = record.get("thread")
        if not isinstance(items, list):
            raise Reject("object has no 'thread' list")
        if "id" in record:
            if not isinstance(record["id"], str) or not record["id"]:
                raise Reject("'id' must be a non-empty string")
            thread_id = record["id"]
    else:
        raise Reject(f"expected a JSON list of messages or an object with a 'thread' list, got {type(record).__name__}")
    if not items:
        raise Reject("empty thread")
    messages = tuple(_parse_message(item, position) for position, item in enumerate(items))
    return Thread(id=thread_id, cluster=cluster, line=line, messages=messages)


def _parse_message(item: object, position: int) -> Message:
    where = f"message {position}"
    if not isinstance(item, dict):
        raise Reject(f"{where}: expected an object, got {type(item).__name__}")
    user = item.get("user_id")
    if not isinstance(user, str) or not user:
        raise Reject(f"{where}: 'user_id' must be a non-empty string")
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise Reject(f"{where}: 'text' must be a string, got {type(text).__name__}")
    actions = _parse_actions(item["actions"], where) if "actions" in item else None
    if not (text and text.strip()) and not actions:
        raise Reject(f"{where}: has neither text nor a true action")
    return Message(user=user, time=_parse_time(item, position, where), text=text or None, actions=actions)


def _parse_actions(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):  # the raw shape stores the dict as a JSON string
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise Reject(f"{where}: 'actions' is a string but not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Reject(f"{where}: 'actions' must be an object, got {type(value).__name__}")
    unknown = sorted(set(value) - _ACTION_SET)
    if unknown:
        raise Reject(f"{where}: unknown action key(s) {unknown}")
    for key, flag in value.items():
        if not isinstance(flag, bool):
            raise Reject(f"{where}: action '{key}' must be true or false, got {type(flag).__name__}")
    return tuple(key for key in ACTION_KEYS if value.get(key))


def _parse_time(item: dict, position: int, where: str) -> float:
    for key in ("relative_integer_time", "unix_epoch"):
        if key in item:
            value = item[key]
            # bool is an int subclass; a time of `true` is a wrong type, not 1.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Reject(f"{where}: '{key}' must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or abs(value) > 2**63:
                raise Reject(f"{where}: '{key}' is out of range")
            return value
    return position
