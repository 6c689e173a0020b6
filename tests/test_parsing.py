"""Both cluster-file shapes parse to the same threads; unusable lines say why."""

from __future__ import annotations

import orjson
import pytest

from instruct.parsing import Reject, parse_thread

RELEASED = {"thread": [
    {"user_id": "a", "relative_integer_time": 5, "text": "hello there"},
    {"user_id": "b", "relative_integer_time": 9, "actions": {"like": True, "reply": False}},
], "cluster_id": 3, "id": "task-3-1"}
RAW = [
    {"user_id": "a", "unix_epoch": 0, "text": "hello there"},
    {"user_id": "b", "unix_epoch": 1500, "actions": orjson.dumps({"like": True, "ignore": False}).decode()},
]


def test_released_shape():
    thread = parse_thread(orjson.dumps(RELEASED), cluster="cluster_3", line=7)
    assert thread.id == "task-3-1" and thread.line == 7
    assert [m.text for m in thread.messages] == ["hello there", None]
    assert thread.messages[1].actions == ("like",)
    assert [m.time for m in thread.messages] == [5, 9]


def test_raw_shape_with_actions_as_json_string_gets_a_line_based_id():
    thread = parse_thread(orjson.dumps(RAW) + b"\r\n", cluster="cluster_3", line=12)
    assert thread.id == "cluster_3:12"
    assert thread.messages[1].actions == ("like",)
    assert thread.anchor_post().text == "hello there"


def test_time_falls_back_to_position():
    thread = parse_thread(b'[{"user_id": "a", "text": "x"}, {"user_id": "b", "text": "y"}]', cluster="c", line=1)
    assert [m.time for m in thread.messages] == [0, 1]


def test_bom_is_ignored():
    assert parse_thread(b"\xef\xbb\xbf" + orjson.dumps(RAW), cluster="c", line=1).messages[0].user == "a"


@pytest.mark.parametrize("raw, reason", [
    (b"", "blank line"),
    (b'{"thread": [', "invalid JSON"),
    (b"[]", "empty thread"),
    (b'{"thread": []}', "empty thread"),
    (b'{"id": "x"}', "no 'thread' list"),
    (b"42", "expected a JSON list"),
    (b'[{"user_id": "a"}]', "neither text nor a true action"),
    (b'[{"user_id": "a", "text": "  "}]', "neither text nor a true action"),
    (b'[{"user_id": 5, "text": "x"}]', "'user_id' must be a non-empty string"),
    (b'[{"user_id": "a", "text": 5}]', "'text' must be a string"),
    (b'[{"user_id": "a", "actions": "{not json"}]', "not valid JSON"),
    (b'[{"user_id": "a", "actions": {"like": "yes"}}]', "must be true or false"),
    (b'[{"user_id": "a", "actions": {"teleport": true}}]', "unknown action"),
    (b'[{"user_id": "a", "text": "x", "unix_epoch": "noon"}]', "must be a number"),
    (b'[{"user_id": "a", "text": "x", "unix_epoch": true}]', "must be a number"),
    (b'[{"user_id": "a", "text": "x", "unix_epoch": 1e300}]', "out of range"),
    (b'{"thread": [{"user_id": "a", "text": "x"}], "id": 5}', "'id' must be"),
    (b'["text"]', "expected an object"),
])
def test_unusable_lines_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(Reject, match=reason):
        parse_thread(raw, cluster="c", line=1)
