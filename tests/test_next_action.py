"""Next action: the response is JSON whose actions are the true action keys of the thread's last message and
whose text is that message's text; on real threads of both shapes."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest
from conftest import compose_config, manifest_of, read_jsonl, run_pipeline

from instruct.parsing import parse_thread
from instruct.records import ACTION_KEYS
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.next_action import NO_EARLIER, NextActionTask
from instruct.templates import TemplateSet
from instruct.text import ClusterStats

ONLY_NEXT_ACTION = ("~tasks.needle", "~tasks.keyword_post", "~tasks.completion",
                    "+task@tasks.next_action=next_action", "mix=none",
                    "dedup=none")  # every real thread, its 5 duplicate posts included
UNFILLED = re.compile(r"(?<!\{)\{[A-Za-z_]+\}(?!\})")
CONTEXT = TaskContext(cluster="cluster_0", stats=ClusterStats())


def _task(**kwargs) -> NextActionTask:
    return NextActionTask(**kwargs).bind("next_action", TemplateSet("default"))


def _released(*messages: dict) -> bytes:
    return orjson.dumps({"thread": list(messages), "cluster_id": 0, "id": "task-0-1"})


def _actions(*true: str) -> dict:
    keys = [k for k in ACTION_KEYS if k not in ("ignore", "profile_update")]
    return {key: key in true for key in keys}


def test_reply_gives_its_action_and_text_and_the_context_names_users():
    raw = _released(
        {"user_id": "a", "relative_integer_time": 1, "text": "Trams are back on Main Street"},
        {"user_id": "b", "relative_integer_time": 2, "text": "About time"},
        {"user_id": "a", "relative_integer_time": 3, "text": "Agreed, and the buses\nshould follow",
         "actions": _actions("reply")},
    )
    thread = parse_thread(raw, cluster="cluster_0", line=1)
    task = _task()
    assert task.decline_reason(thread, CONTEXT) is None
    row = task.build(thread, CONTEXT, Draws(np.random.default_rng(3)))
    assert orjson.loads(row.response) == {"actions": ["reply"], "text": "Agreed, and the buses\nshould follow"}
    assert row.response.startswith('{"actions":["reply"],"text":')  # compact, keys in the documented order
    assert "User_0: Trams are back on Main Street\nUser_1: About time" in row.instruction
    assert "User_0" in row.instruction.replace("User_0: Trams", "")  # the actor (user a) is named as User_0
    assert ", ".join(ACTION_KEYS) in row.instruction
    assert "Agreed" not in row.instruction and not UNFILLED.search(row.instruction)


def test_one_message_post_has_no_context_and_the_post_is_the_answer():
    raw = _released({"user_id": "a", "relative_integer_time": 1, "text": "Morning ride along the canal",
                     "actions": _actions("post")})
    row = _task().build(parse_thread(raw, cluster="cluster_0", line=1), CONTEXT, Draws(np.random.default_rng(0)))
    assert orjson.loads(row.response) == {"actions": ["post"], "text": "Morning ride along the canal"}
    assert NO_EARLIER in row.instruction and "User_0" in row.instruction
    assert "Morning ride" not in row.instruction


def test_raw_shape_action_string_with_ignore_and_an_action_only_context_message():
    actions = orjson.dumps({key: key == "ignore" for key in ACTION_KEYS if key not in ("post", "reply")}).decode()
    raw = orjson.dumps([
        {"user_id": "a", "unix_epoch": 0, "text": "New bike lanes downtown"},
        {"user_id": "b", "unix_epoch": 10, "actions": orjson.dumps({"like": True, "repost": True}).decode()},
        {"user_id": "c", "unix_epoch": 20, "actions": actions},
    ])
    thread = parse_thread(raw, cluster="cluster_0", line=4)
    row = _task().build(thread, CONTEXT, Draws(np.random.default_rng(1)))
    assert orjson.loads(row.response) == {"actions": ["ignore"], "text": None}
    assert "User_0: New bike lanes downtown\nUser_1: [like, repost]" in row.instruction
    assert "User_2" in row.instruction


def test_declines_a_last_message_without_actions_or_with_unlisted_actions():
    raw_reply = orjson.dumps([{"user_id": "a", "unix_epoch": 0, "text": "x"}, {"user_id": "b", "unix_epoch": 1, "text": "y"}])
    assert _task().decline_reason(parse_thread(raw_reply, cluster="c", line=1), CONTEXT) == \
        "last message has no actions field"
    liked = _released({"user_id": "a", "text": "x"}, {"user_id": "b", "actions": _actions("like")})
    thread = parse_thread(liked, cluster="c", line=1)
    assert _task(actions=["post", "reply"]).decline_reason(thread, CONTEXT) == "action not among the listed options"
    row = _task(actions=["like", "follow"]).build(thread, CONTEXT, Draws(np.random.default_rng(0)))
    assert "like, follow" in row.instruction and "unfollow" not in row.instruction
    with pytest.raises(ValueError, match="unknown action"):
        NextActionTask(actions=["retweet"])


def test_long_context_keeps_the_latest_messages_and_says_how_many_are_left_out():
    messages = [{"user_id": f"u{i % 4}", "relative_integer_time": i, "text": f"message number {i}"} for i in range(9)]
    messages.append({"user_id": "u9", "relative_integer_time": 9, "text": "last", "actions": _actions("reply")})
    row = _task(max_context_messages=3).build(parse_thread(_released(*messages), cluster="c", line=1), CONTEXT,
                                              Draws(np.random.default_rng(0)))
    assert "(6 earlier messages not shown)" in row.instruction
    assert "message number 5" not in row.instruction and "User_0: message number 6" in row.instruction


def test_the_override_from_the_brief_composes():
    cfg = compose_config("+task@tasks.next_action=next_action")
    assert cfg.tasks.next_action._target_ == "instruct.tasks.next_action.NextActionTask"
    assert {"needle", "keyword_post", "completion", "next_action"} == set(cfg.tasks)


@pytest.mark.parametrize("shape", ["released", "raw"])
def test_real_sample_every_answer_is_the_last_message(tmp_path, shared_sample, shape):
    run = run_pipeline(tmp_path, *ONLY_NEXT_ACTION, f"source.path={shared_sample / shape}")
    counts = manifest_of(run)["counts"]["per_task"]["next_action"]
    without_actions = 0
    for cluster in ("cluster_0", "cluster_1"):
        lines = (shared_sample / shape / f"{cluster}.jsonl").read_bytes().splitlines()
        threads = [parse_thread(raw, cluster=cluster, line=n + 1) for n, raw in enumerate(lines)]
        without_actions += sum(thread.messages[-1].actions is None for thread in threads)
        rows = read_jsonl(run / "train" / f"{cluster}.jsonl")
        assert len(rows) == sum(thread.messages[-1].actions is not None for thread in threads)
        for row in rows:
            last = threads[row["meta"]["line"] - 1].messages[-1]
            answer = orjson.loads(row["messages"][1]["content"])
            assert answer == {"actions": list(last.actions), "text": last.text}
            assert not UNFILLED.search(row["messages"][0]["content"])
    assert counts["offered"] == 400 and counts["produced"] == 400 - without_actions
    assert counts["declined"] == ({"last message has no actions field": without_actions} if without_actions else {})
    if shape == "raw":
        assert without_actions > 0  # raw posts and replies carry only text
