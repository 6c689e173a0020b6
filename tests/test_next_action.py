"""Next action: the response is BluePrint's reply object, actions as booleans over the offered keys (true for
the thread's last message's actions) and its text beside them (left out when it has none), the same in every
format and as every template describes it; on real threads of both shapes."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest
from conftest import compose_config, manifest_of, read_jsonl, run_pipeline

from instruct.parsing import parse_thread
from instruct.records import ACTION_KEYS, RAW_ACTION_KEYS, RELEASED_ACTION_KEYS
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.next_action import ACTS_ON_NOTHING, NextActionTask
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
    assert orjson.loads(row.response) == {"actions": _actions("reply"), "text": "Agreed, and the buses\nshould follow"}
    assert row.response.startswith('{"actions":{"like":false,"unlike":false,')  # compact, in the offered order
    assert list(orjson.loads(row.response)["actions"]) == list(RELEASED_ACTION_KEYS)
    assert row.reply_json  # output=blueprint writes these very bytes as the assistant turn
    assert "User_0: Trams are back on Main Street\nUser_1: About time" in row.instruction
    assert "User_0" in row.instruction.replace("User_0: Trams", "")  # the actor (user a) is named as User_0
    # The released shape has no ignore/profile_update: only its own 13 keys are offered.
    assert ", ".join(RELEASED_ACTION_KEYS) in row.instruction
    assert "ignore" not in row.instruction and "profile_update" not in row.instruction
    assert "Agreed" not in row.instruction and not UNFILLED.search(row.instruction)


def test_one_message_post_says_a_new_post_starts_and_the_post_is_the_answer():
    raw = _released({"user_id": "a", "relative_integer_time": 1, "text": "Morning ride along the canal",
                     "actions": _actions("post")})
    task = _task()
    for seed in range(12):
        row = task.build(parse_thread(raw, cluster="cluster_0", line=1), CONTEXT, Draws(np.random.default_rng(seed)))
        assert orjson.loads(row.response) == {"actions": _actions("post"), "text": "Morning ride along the canal"}
        assert row.meta["variant"] == "new_post" and row.meta["template_id"].startswith("next_action.new_post.")
        prompt = row.instruction.lower()
        assert "new post" in prompt and "User_0" in row.instruction
        # Nothing is shown, so the prompt points at no thread or context.
        assert not any(word in prompt for word in ("thread above", "the thread", "so far", "below"))
        assert "Morning ride" not in row.instruction


def test_an_action_on_nothing_is_declined():
    liked = _released({"user_id": "a", "relative_integer_time": 1, "actions": _actions("like")})
    assert _task().decline_reason(parse_thread(liked, cluster="c", line=1), CONTEXT) == ACTS_ON_NOTHING
    with_context = _released({"user_id": "a", "text": "x"}, {"user_id": "b", "actions": _actions("like")})
    assert _task().decline_reason(parse_thread(with_context, cluster="c", line=1), CONTEXT) is None


def test_raw_shape_action_string_with_ignore_and_an_action_only_context_message():
    actions = orjson.dumps({key: key == "ignore" for key in ACTION_KEYS if key not in ("post", "reply")}).decode()
    raw = orjson.dumps([
        {"user_id": "a", "unix_epoch": 0, "text": "New bike lanes downtown"},
        {"user_id": "b", "unix_epoch": 10, "actions": orjson.dumps({"like": True, "repost": True}).decode()},
        {"user_id": "c", "unix_epoch": 20, "actions": actions},
    ])
    thread = parse_thread(raw, cluster="cluster_0", line=4)
    row = _task().build(thread, CONTEXT, Draws(np.random.default_rng(1)))
    # no text: no text key, as BluePrint's replies
    assert orjson.loads(row.response) == {"actions": {key: key == "ignore" for key in RAW_ACTION_KEYS}}
    assert ", ".join(RAW_ACTION_KEYS) in row.instruction and "reply" not in row.instruction
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
    assert orjson.loads(row.response) == {"actions": {"like": True, "follow": False}}
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


def nothing_in(threads) -> int:
    return sum(len(t.messages) == 1 and not t.messages[0].text and t.messages[0].actions is not None for t in threads)


@pytest.mark.parametrize("shape", ["released", "raw"])
def test_real_sample_every_answer_is_the_last_message(tmp_path, shared_sample, shape):
    run = run_pipeline(tmp_path, *ONLY_NEXT_ACTION, f"source.path={shared_sample / shape}")
    counts = manifest_of(run)["counts"]["per_task"]["next_action"]
    without_actions = nothing = 0
    for cluster in ("cluster_0", "cluster_1"):
        lines = (shared_sample / shape / f"{cluster}.jsonl").read_bytes().splitlines()
        threads = [parse_thread(raw, cluster=cluster, line=n + 1) for n, raw in enumerate(lines)]
        without_actions += sum(thread.messages[-1].actions is None for thread in threads)
        nothing += nothing_in(threads)
        rows = read_jsonl(run / "train" / f"{cluster}.jsonl")
        assert len(rows) == sum(thread.messages[-1].actions is not None for thread in threads) - nothing_in(threads)
        for row in rows:
            thread = threads[row["meta"]["line"] - 1]
            last = thread.messages[-1]
            answer = orjson.loads(row["messages"][1]["content"])
            keys = RAW_ACTION_KEYS if shape == "raw" else RELEASED_ACTION_KEYS
            expected = {"actions": {key: key in last.actions for key in keys}}
            if last.text is not None:
                expected["text"] = last.text
            assert answer == expected and list(answer["actions"]) == list(keys)
            assert not UNFILLED.search(row["messages"][0]["content"])
            # The prompt says what it holds: a thread so far, or a new post with nothing before it.
            assert row["meta"]["variant"] == ("thread" if len(thread.messages) > 1 else "new_post")
    assert counts["offered"] == 400 and counts["produced"] == 400 - without_actions - nothing
    expected = {"last message has no actions field": without_actions, ACTS_ON_NOTHING: nothing}
    assert counts["declined"] == {reason: n for reason, n in expected.items() if n}
    if shape == "raw":
        assert without_actions > 0  # raw posts and replies carry only text


@pytest.mark.parametrize("shape", ["released", "raw"])
def test_real_sample_blueprint_rows_hold_blueprints_reply_object(tmp_path, shared_sample, shape):
    """output=blueprint: the assistant turn is {"actions": {<shape key>: bool …}, "text": …} as BluePrint's prompt
    and its compute_metrics read it (actions an object of booleans), with the lineage in meta/, line for line."""
    keys = RAW_ACTION_KEYS if shape == "raw" else RELEASED_ACTION_KEYS
    run = run_pipeline(tmp_path, *ONLY_NEXT_ACTION, f"source.path={shared_sample / shape}", "output=blueprint")
    for cluster in ("cluster_0", "cluster_1"):
        lines = (shared_sample / shape / f"{cluster}.jsonl").read_bytes().splitlines()
        rows, metas = read_jsonl(run / "train" / f"{cluster}.jsonl"), read_jsonl(run / "meta" / "train" / f"{cluster}.jsonl")
        assert len(rows) == len(metas) > 0
        for turns, meta in zip(rows, metas):
            last = parse_thread(lines[meta["line"] - 1], cluster=cluster, line=meta["line"]).messages[-1]
            reply = orjson.loads(turns[-1]["content"])
            assert list(reply["actions"]) == list(keys)
            assert {k for k, v in reply["actions"].items() if v} == set(last.actions)
            assert reply.get("text") == last.text and ("text" in reply) == (last.text is not None)
            assert ", ".join(keys) in turns[0]["content"]


@pytest.mark.parametrize("template_set", ["default", "concise"])
def test_every_format_carries_the_reply_object_every_template_describes(template_set):
    """One shape everywhere: the messages/alpaca/sharegpt response and the blueprint assistant turn are the same
    bytes, and every template of both sets describes that object (never the list form or a null text)."""
    from instruct.formats import FORMATS

    task = NextActionTask().bind("next_action", TemplateSet(template_set))
    raw = _released({"user_id": "a", "text": "Trams are back"}, {"user_id": "b", "actions": _actions("like")})
    row = task.build(parse_thread(raw, cluster="c", line=1), CONTEXT, Draws(np.random.default_rng(0)))
    assert orjson.loads(row.response) == {"actions": _actions("like")}
    assert FORMATS["messages"](row)["messages"][1]["content"] == row.response
    assert FORMATS["alpaca"](row)["output"] == row.response
    assert FORMATS["sharegpt"](row)["conversations"][1]["value"] == row.response
    assert FORMATS["blueprint"](row)[-1] == {"role": "assistant", "content": row.response}
    for templates in task._templates.values():
        for template in templates:
            wording = template.render({"context": "", "user": "User_0", "action_list": "like, follow"})
            assert '"actions": {' in wording and '"text"' in wording, template.id
            assert '"actions": [' not in wording and "null" not in wording, template.id
