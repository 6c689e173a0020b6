"""`tasks=all` on real BluePrint threads: every task that has an offline answer produces rows, the manifest
explains every thread a task did not use, and the tasks that need an LLM (paraphrase) or labels (voting
intention) say so and write nothing."""

from __future__ import annotations

import csv
import re

import orjson
import pytest
from conftest import compose_config, manifest_of, read_jsonl, run_pipeline

from instruct.pipeline import build_tasks
from instruct.templates import TemplateSet

ALL_TASKS = {"needle", "summarization", "topic_post", "keyword_post", "completion", "paraphrase",
             "voting_intention", "next_action"}
NEEDS_LLM = {"paraphrase"}  # no offline answer: "not applicable: needs an LLM responder"


def write_labels(path, shared_sample):
    """Voting labels by thread id for the real sample (a test-made label source; BluePrint has none)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["thread_id", "label"])
        for line in (shared_sample / "released" / "cluster_0.jsonl").read_bytes().splitlines():
            thread_id = orjson.loads(line)["id"]
            writer.writerow([thread_id, "the Green Party" if len(thread_id) % 2 else "undecided"])


def test_every_task_produces_rows_and_every_decline_is_explained(tmp_path, shared_sample, dolly_file):
    labels = tmp_path / "labels.csv"
    write_labels(labels, shared_sample)
    run = run_pipeline(tmp_path, "tasks=all", f"source.path={shared_sample / 'released'}", f"dolly.path={dolly_file}",
                       f"tasks.voting_intention.labels.file={labels}", "dedup=none")
    manifest = manifest_of(run)
    per_task = manifest["counts"]["per_task"]
    assert set(per_task) == ALL_TASKS
    for name, task in per_task.items():
        assert (task["produced"] == 0) == (name in NEEDS_LLM), (name, task)
        assert task["offered"] == manifest["counts"]["threads_used"] == 400
        assert task["offered"] == task["eligible"] + sum(task["declined"].values()), name
        assert task["eligible"] >= task["produced"] + sum(task["failed"].values()), name
    produced = sum(task["produced"] for task in per_task.values())
    assert produced + manifest["counts"]["threads_without_task"] == manifest["counts"]["threads_used"]
    rows = [row for path in (run / "train").glob("*.jsonl") for row in read_jsonl(path)]
    assert {row["task"] for row in rows} == ALL_TASKS - NEEDS_LLM | {"dolly"}
    assert per_task["paraphrase"]["declined"] == {"not applicable: needs an LLM responder": 400}
    for row in rows:
        response = row["messages"][1]["content"]
        assert response.strip() and not re.search(r"\[LLM|PLACEHOLDER", response)
        assert row["meta"]["response_source"] == "data"


def test_without_labels_voting_is_reported_not_applicable_and_without_an_llm_paraphrase(tmp_path, shared_sample):
    run = run_pipeline(tmp_path, "tasks=all", f"source.path={shared_sample / 'released'}", "mix=none")
    manifest = manifest_of(run)
    log = (run / "run.log").read_text()
    for task, status in (("voting_intention", "not applicable: no labels"),
                         ("paraphrase", "not applicable: needs an LLM responder")):
        assert manifest["counts"]["per_task"][task]["produced"] == 0
        assert status in manifest["tasks"][task]["status"] and status in log


@pytest.mark.parametrize("template_set", ["default", "concise"])
def test_no_row_of_any_task_has_an_unfilled_placeholder(tmp_path, shared_sample, template_set):
    labels = tmp_path / "labels.csv"
    write_labels(labels, shared_sample)
    # feed_rare_zipf=8 (two shared words, common ones too): with the default a real feed with one subject is
    # rare, and summarization could make no row here to check.
    run = run_pipeline(tmp_path, "tasks=all", f"templates={template_set}", f"source.path={shared_sample / 'released'}",
                       "mix=none", f"tasks.voting_intention.labels.file={labels}", "split.validation_fraction=0.2",
                       "tasks.summarization.feed_rare_zipf=8")
    names = {name for task in build_tasks(compose_config("tasks=all").tasks, TemplateSet(template_set))
             for slots in task.slots.values() for name in slots.required | slots.optional}
    unfilled = re.compile(r"\{(" + "|".join(sorted(names)) + r")\}")
    rows = [row for split in ("train", "validation") for path in (run / split).glob("*.jsonl") for row in read_jsonl(path)]
    assert {row["task"] for row in rows} == ALL_TASKS - NEEDS_LLM
    for row in rows:
        for message in row["messages"]:
            assert not unfilled.search(message["content"]), (row["meta"]["template_id"], message["content"][:200])
