"""Voting intention: rows only where a label exists (record field or a JSONL/CSV label file), the right label
in every response, and "not applicable: no labels" — never a made-up label — when no source is configured."""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import compose_config, manifest_of, read_jsonl, run_pipeline

from instruct.errors import InstructError
from instruct.parsing import parse_thread
from instruct.pipeline import generate
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.voting_intention import NO_LABELS, VotingIntentionTask
from instruct.templates import TemplateSet
from instruct.text import ClusterStats

ONLY_VOTING = ("~tasks.needle", "~tasks.keyword_post", "~tasks.completion",
               "+task@tasks.voting_intention=voting_intention", "mix=none",
               "dedup=none")  # every real thread, its 5 duplicate posts included
UNFILLED = re.compile(r"(?<!\{)\{[A-Za-z_]+\}(?!\})")


def _message(user: str, time: int, text: str | None = None, action: str | None = None) -> dict:
    message = {"user_id": user, "relative_integer_time": time}
    if text is not None:
        message["text"] = text
    if action is not None:
        message["actions"] = {"post": action == "post", "reply": action == "reply", "like": action == "like"}
    return message


def _record(cluster: int, n: int, **extra) -> dict:
    """Thread n of a cluster, shaped like the release; every third one ends with an action-only like."""
    author, actor = f"author-{cluster}-{n}", f"actor-{cluster}-{n}"
    if n % 3 == 2:
        messages = [_message(author, 1, f"Cluster {cluster} post {n} about buses"), _message(actor, 2, action="like")]
    else:
        messages = [_message(actor, 1, f"Cluster {cluster} post {n} about rail\nsecond line", "post")]
    return {"thread": messages, "cluster_id": cluster, "id": f"task-{cluster}-{n}", **extra}


def _write_clusters(folder: Path, records_by_cluster: dict[int, list[dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for cluster, records in records_by_cluster.items():
        (folder / f"cluster_{cluster}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return folder


@pytest.fixture
def clusters(tmp_path: Path) -> Path:
    return _write_clusters(tmp_path / "data", {c: [_record(c, n) for n in range(9)] for c in (0, 1)})


def _write_labels(path: Path, key: str, labels: dict) -> Path:
    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([key, "label"])
            writer.writerows(labels.items())
    else:
        path.write_bytes(b"".join(orjson.dumps({key: k, "label": v}) + b"\n" for k, v in labels.items()))
    return path


def _voting_rows(run: Path) -> list[dict]:
    rows = [row for path in sorted((run / "train").glob("*.jsonl")) for row in read_jsonl(path)]
    assert {row["task"] for row in rows} <= {"voting_intention"}
    return rows


def _response(row: dict) -> str:
    return row["messages"][1]["content"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_label_file_by_thread_id_labels_exactly_the_listed_threads(tmp_path, clusters, suffix):
    # Labelled: threads 0, 1, 2 of cluster 0 (2 ends in a like: its actor wrote nothing) and 4 of cluster 1.
    labels = {"task-0-0": "Green", "task-0-1": "undecided", "task-0-2": "Labour", "task-1-4": "Liberal Democrats"}
    path = _write_labels(tmp_path / f"labels{suffix}", "thread_id", labels)
    run = run_pipeline(tmp_path, *ONLY_VOTING, f"source.path={clusters}", f"tasks.voting_intention.labels.file={path}")
    rows = _voting_rows(run)
    assert sorted(row["meta"]["thread_id"] for row in rows) == ["task-0-0", "task-0-1", "task-1-4"]
    for row in rows:
        label = labels[row["meta"]["thread_id"]]
        assert _response(row).count(label) == 1 and not UNFILLED.search(_response(row))
        cluster, n = row["meta"]["thread_id"].split("-")[1:]
        # The history is the actor's post, one line (its own line break folded into a space).
        assert f"Cluster {cluster} post {n} about rail second line" in row["messages"][0]["content"]
    counts = manifest_of(run)["counts"]["per_task"]["voting_intention"]
    assert counts["offered"] == 18 and counts["produced"] == 3
    assert counts["declined"] == {"no label for its thread_id": 14, "user has no text messages": 1}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_label_file_by_cluster_id_labels_every_thread_of_the_cluster(tmp_path, clusters, suffix):
    labels = {"0": "Green", "cluster_1": "Conservative"}  # both spellings of a cluster id are accepted
    path = _write_labels(tmp_path / f"labels{suffix}", "cluster_id", labels)
    run = run_pipeline(tmp_path, *ONLY_VOTING, f"source.path={clusters}", f"tasks.voting_intention.labels.file={path}",
                       "tasks.voting_intention.labels.key=cluster_id")
    rows = _voting_rows(run)
    assert len(rows) == 12  # 6 of 9 threads per cluster end in a text post by the actor
    for row in rows:
        expected = "Green" if row["meta"]["cluster"] == "cluster_0" else "Conservative"
        assert expected in _response(row)
    manifest = manifest_of(run)
    assert manifest["tasks"]["voting_intention"]["labels_loaded"] == 2
    assert manifest["tasks"]["voting_intention"]["label_file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["counts"]["per_task"]["voting_intention"]["declined"] == {"user has no text messages": 6}


def test_thread_fields_are_the_records_other_top_level_keys():
    released = parse_thread(orjson.dumps(_record(0, 0, vote="Green")), cluster="cluster_0", line=1)
    assert released.fields == {"cluster_id": 0, "id": "task-0-0", "vote": "Green"}
    raw = parse_thread(orjson.dumps(_record(0, 0)["thread"]), cluster="cluster_0", line=1)
    assert raw.fields == {}


def test_record_field_is_the_label(tmp_path):
    records = [_record(0, 0, vote="Green"), _record(0, 1, vote="undecided"), _record(0, 3), _record(0, 4, vote="")]
    data = _write_clusters(tmp_path / "data", {0: records})
    run = run_pipeline(tmp_path, *ONLY_VOTING, f"source.path={data}", "tasks.voting_intention.labels.field=vote")
    rows = _voting_rows(run)
    assert {row["meta"]["thread_id"]: _response(row) for row in rows}.keys() == {"task-0-0", "task-0-1"}
    for row in rows:
        assert ("Green" if row["meta"]["thread_id"] == "task-0-0" else "undecided") in _response(row)
    declined = manifest_of(run)["counts"]["per_task"]["voting_intention"]["declined"]
    assert declined == {"no 'vote' label in the record": 2}


def test_without_a_label_source_no_rows_and_the_manifest_says_why(tmp_path, clusters, caplog):
    with caplog.at_level(logging.WARNING, logger="instruct"):
        run = run_pipeline(tmp_path, "~tasks.needle", "~tasks.keyword_post", "mix=none", f"source.path={clusters}",
                           "+task@tasks.voting_intention=voting_intention", "tasks.completion.min_words=4",
                           "tasks.completion.min_side=2")
    manifest = manifest_of(run)
    assert manifest["tasks"]["voting_intention"]["status"].startswith(NO_LABELS)
    voting = manifest["counts"]["per_task"]["voting_intention"]
    assert voting["produced"] == 0 and voting["declined"] == {NO_LABELS: 18}
    assert manifest["counts"]["per_task"]["completion"]["produced"] > 0  # the run itself went on
    rows = [row for path in (run / "train").glob("*.jsonl") for row in read_jsonl(path)]
    assert rows and not any(row["task"] == "voting_intention" for row in rows)
    warnings = [r for r in caplog.records if NO_LABELS in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_a_missing_label_file_names_the_path_and_the_key(tmp_path, clusters):
    missing = tmp_path / "nowhere.csv"
    cfg = compose_config("progress=false", *ONLY_VOTING, f"source.path={clusters}",
                         f"tasks.voting_intention.labels.file={missing}")
    with pytest.raises(InstructError, match=r"tasks\.voting_intention: label file .*nowhere\.csv does not exist.*labels\.file"):
        generate(cfg, tmp_path / "out")


def test_a_label_file_without_usable_rows_names_the_path_and_the_key(tmp_path, clusters):
    path = _write_labels(tmp_path / "labels.jsonl", "user", {"someone": "Green"})  # wrong key column
    cfg = compose_config("progress=false", *ONLY_VOTING, f"source.path={clusters}",
                         f"tasks.voting_intention.labels.file={path}")
    with pytest.raises(InstructError, match=r"labels\.jsonl has no usable rows keyed by 'thread_id'.*labels\.key"):
        generate(cfg, tmp_path / "out")


def test_a_key_with_two_labels_is_an_error(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("thread_id,label\nt1,Green\nt1,Labour\n", encoding="utf-8")
    with pytest.raises(InstructError, match=r"line 3: thread_id 't1' has two labels"):
        VotingIntentionTask(labels={"file": str(path)})


def test_user_id_labels_and_the_history_are_the_last_users_own_posts(tmp_path):
    path = _write_labels(tmp_path / "labels.csv", "user_id", {"voter": "Reform"})
    raw = orjson.dumps([
        {"user_id": "voter", "unix_epoch": 0, "text": "First thought on trams"},
        {"user_id": "other", "unix_epoch": 5, "text": "Someone else's reply"},
        {"user_id": "voter", "unix_epoch": 9, "text": "Second thought\non buses"},
    ])
    thread = parse_thread(raw, cluster="cluster_0", line=1)
    task = VotingIntentionTask(labels={"file": str(path), "key": "user_id"}).bind("voting_intention",
                                                                                  TemplateSet("default"))
    context = TaskContext(cluster="cluster_0", stats=ClusterStats())
    assert task.decline_reason(thread, context) is None
    row = task.build(thread, context, Draws(np.random.default_rng(0)))
    assert "Reform" in row.response
    assert "First thought on trams\nSecond thought on buses" in row.instruction
    assert "Someone else's reply" not in row.instruction
    prompt_id, response_id = row.meta["template_id"].split("+")
    assert prompt_id.startswith("voting_intention.prompt.") and response_id.startswith("voting_intention.response.")


@pytest.mark.parametrize("shape", ["released", "raw"])
def test_real_sample_gets_the_label_of_its_cluster(tmp_path, shared_sample, shape):
    path = _write_labels(tmp_path / "labels.csv", "cluster_id", {"0": "Green", "1": "undecided"})
    run = run_pipeline(tmp_path, *ONLY_VOTING, f"source.path={shared_sample / shape}",
                       f"tasks.voting_intention.labels.file={path}", "tasks.voting_intention.labels.key=cluster_id")
    rows = _voting_rows(run)
    counts = manifest_of(run)["counts"]["per_task"]["voting_intention"]
    # Every thread whose last user wrote something is labelled; the rest end in an action-only message.
    assert counts["produced"] == len(rows) > 0
    assert counts["offered"] == 400 and counts["declined"] == {"user has no text messages": 400 - len(rows)}
    for row in rows:
        assert ("Green" if row["meta"]["cluster"] == "cluster_0" else "undecided") in _response(row)
        assert not UNFILLED.search(row["messages"][0]["content"] + _response(row))
