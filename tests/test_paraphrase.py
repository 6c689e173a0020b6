"""Paraphrase has no offline answer (real posts are not paraphrases of one another): with responder=none it is
reported "not applicable: needs an LLM responder" and writes no row; with an LLM responder every real post of
enough words becomes a prompt whose answer the LLM writes."""

from __future__ import annotations

import re

import numpy as np
from conftest import manifest_of, rows_of, run_only

from instruct.records import Message, Thread
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.paraphrase import NEEDS_LLM, ParaphraseTask
from instruct.templates import TemplateSet
from instruct.text import ClusterStats

UNFILLED = re.compile(r"\{[A-Za-z_]+\}")
CONTEXT = TaskContext(cluster="cluster_0", stats=ClusterStats())
POST = "Heat pump rebates are doubling next year, so replacing an old gas furnace just got a lot cheaper."


def thread(text: str | None) -> Thread:
    return Thread("t1", "cluster_0", 1, (Message("u", 0, text, None if text else ("like",)),))


def test_without_an_llm_every_thread_is_declined_and_the_status_says_why():
    task = ParaphraseTask().bind("paraphrase", TemplateSet("default"))
    assert task.decline_reason(thread(POST), CONTEXT) == NEEDS_LLM
    assert task.describe()["status"].startswith(NEEDS_LLM)


def test_with_an_llm_the_prompt_holds_the_real_post_and_the_answer_is_left_to_it():
    for template_set in ("default", "concise"):
        task = ParaphraseTask(min_words=5).bind("paraphrase", TemplateSet(template_set))
        task.llm_answers = True
        assert "LLM responder writes" in task.describe()["status"]
        assert task.decline_reason(thread("too short to reword"), CONTEXT) == "post shorter than 5 words"
        assert task.decline_reason(thread(None), CONTEXT) == "no text message"
        assert task.decline_reason(thread(POST), CONTEXT) is None
        for seed in range(8):
            row = task.build(thread(POST), CONTEXT, Draws(np.random.default_rng(seed)))
            assert POST in row.instruction and not UNFILLED.search(row.instruction)
            assert row.response == "" and row.meta["thread_ids"] == ["t1"]


def test_a_run_without_an_llm_writes_no_paraphrase_row_and_reports_it(tmp_path):
    run = run_only(tmp_path, "paraphrase")
    manifest = manifest_of(run)
    counts = manifest["counts"]["per_task"]["paraphrase"]
    assert counts["produced"] == 0 and counts["declined"] == {NEEDS_LLM: counts["offered"]} and counts["offered"] > 0
    assert NEEDS_LLM in manifest["tasks"]["paraphrase"]["status"]
    assert NEEDS_LLM in (run / "run.log").read_text()
    assert rows_of(run) == []
