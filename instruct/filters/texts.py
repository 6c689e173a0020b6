"""What the filter stage reads of a line: its message texts and its own id, taken from the JSON without
validating the thread (``parse_thread`` checks every message; the stage needs only the texts).

For every line ``parse_thread`` accepts, these give exactly what the parsed thread says: its messages are
objects whose ``text`` is a string or null, so "the messages with a non-empty text" and the thread's own ``id``
read the same either way. For a line it rejects they may give anything, so the stage confirms with
``parse_thread`` every line before it counts it against another: a contaminated line, and every post that
shares a dedup key with another (``ClusterIndex.duplicates``). The rest are never counted, so they need no
check.
"""

from __future__ import annotations

import orjson

from instruct.parsing import Reject, parse_thread


def anchor_text(raw: bytes) -> str | None:
    """The anchor post's text (``Thread.anchor_post``: the last message with text), or None."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:  # a BOM, a blank line or broken JSON: parse_thread knows which
        texts = message_texts(raw)
        return texts[1][-1] if texts is not None and texts[1] else None
    items = record.get("thread") if type(record) is dict else record
    if type(items) is list:
        for item in reversed(items):
            if type(item) is dict:
                text = item.get("text")
                if text and type(text) is str:
                    return text
    return None


def message_texts(raw: bytes) -> tuple[str | None, list[str]] | None:
    """The thread's own ``id`` (None when the record has none) and the texts of its messages that have one,
    in order; None for a line the shards reject for certain."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:  # a BOM, a blank line or broken JSON: parse_thread knows which
        try:
            thread = parse_thread(raw, cluster="", line=0)  # only its own id and texts are read
        except Reject:
            return None
        return (thread.id if "id" in thread.fields else None), [m.text for m in thread.messages if m.text]
    if type(record) is dict:
        items, own_id = record.get("thread"), record.get("id")
    else:
        items, own_id = record, None
    if type(items) is not list:
        return None
    return (own_id if type(own_id) is str else None,
            [text for item in items if type(item) is dict and (text := item.get("text")) and type(text) is str])
