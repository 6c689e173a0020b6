"""Paraphrase: the partner is a different real post, of another thread and the same split, that meets both
thresholds; posts without such a partner are declined, never given a poor one."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from conftest import ROOT, read_jsonl, rows_of, run_only, run_pipeline
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.parsing import parse_thread
from instruct.records import Message, Thread
from instruct.seeding import Draws
from instruct.tasks.base import TaskContext
from instruct.tasks.paraphrase import ParaphraseTask, word_overlap
from instruct.templates import TemplateSet
from instruct.text import ClusterStats
from instruct.tfidf import terms

TEMPLATES = TemplateSet("default")
UNFILLED = re.compile(r"\{[A-Za-z_]+\}")

HEAT_PUMP = "Heat pump rebates are doubling next year, so replacing an old gas furnace just got a lot cheaper."
HEAT_PUMP_AGAIN = "Next year the rebate for a heat pump install doubles, which makes ditching that aging gas furnace easier."
UNRELATED = [
    "The library book sale is on Saturday and every paperback costs one dollar.",
    "Our dog learned to ring a bell by the door when he wants to go outside.",
    "Tonight is the peak of the meteor shower, so get away from the city lights.",
    "Thank you so much for the tips!",
]


def exact_cosine(a: str, b: str, stats: ClusterStats) -> float:
    """TF-IDF cosine of two texts computed directly from the definition, independently of the task's code."""
    first, second = set(terms(a)), set(terms(b))
    norm = math.sqrt(sum(stats.idf(t) ** 2 for t in first)) * math.sqrt(sum(stats.idf(t) ** 2 for t in second))
    return sum(stats.idf(t) ** 2 for t in first & second) / norm


def thread(text: str, line: int, thread_id: str | None = None) -> Thread:
    return Thread(thread_id or f"t{line}", "cluster_0", line, (Message(f"u{line}", line, text, None),))


def chunk_context(threads: list[Thread], split_of=lambda thread_id: "train") -> TaskContext:
    stats = ClusterStats.from_texts([t.anchor_post().text for t in threads])
    return TaskContext(cluster="cluster_0", stats=stats, chunk=threads, split_of=split_of)


def mined(task: ParaphraseTask, threads: list[Thread], **context) -> tuple[TaskContext, dict[int, int]]:
    """Run begin_chunk; returns the context and line -> partner line for every post that has one."""
    task.bind("paraphrase", TEMPLATES)
    ctx = chunk_context(threads, **context)
    task.begin_chunk(ctx)
    partners = {}
    for t in threads:
        if task.decline_reason(t, ctx) is None:
            row = task.build(t, ctx, Draws(np.random.default_rng(t.line)))
            partners[t.line] = next(p.line for p in threads
                                    if p.id == row.meta["thread_ids"][1] and p.anchor_post().text == row.response)
        else:
            assert task.decline_reason(t, ctx) == "no paraphrase partner"
    return ctx, partners


def test_a_paraphrase_pair_is_found_and_unrelated_posts_are_declined():
    threads = [thread(HEAT_PUMP, 1)] + [thread(text, i + 2) for i, text in enumerate(UNRELATED)] + \
              [thread(HEAT_PUMP_AGAIN, 9)]
    task = ParaphraseTask()
    ctx, partners = mined(task, threads)
    assert partners == {1: 9, 9: 1}
    row = task.build(threads[0], ctx, Draws(np.random.default_rng(0)))
    assert HEAT_PUMP in row.instruction and row.response == HEAT_PUMP_AGAIN
    assert row.meta["thread_ids"] == ["t1", "t9"]


def test_copies_and_the_same_thread_are_not_partners():
    reworded = HEAT_PUMP.replace("cheaper", "less expensive")  # a light edit: the word overlap is too high
    threads = [thread(HEAT_PUMP, 1), thread(HEAT_PUMP, 2), thread(reworded, 3),
               thread(HEAT_PUMP_AGAIN, 4, thread_id="t1")] + [thread(text, i + 5) for i, text in enumerate(UNRELATED)]
    assert word_overlap(HEAT_PUMP, reworded) > 0.6
    _, partners = mined(ParaphraseTask(), threads)
    # t1 line 4 shares the thread id of line 1; lines 2 and 3 are copies of line 1 but a different thread
    # from line 4, so they pair with it.
    assert 1 not in partners and partners.get(4) in {2, 3} and partners[2] == 4 and partners[3] == 4


def test_partners_stay_in_one_split():
    threads = [thread(HEAT_PUMP, 1), thread(HEAT_PUMP_AGAIN, 2)] + [thread(t, i + 3) for i, t in enumerate(UNRELATED)]
    _, together = mined(ParaphraseTask(), threads)
    _, apart = mined(ParaphraseTask(), threads, split_of=lambda thread_id: "validation" if thread_id == "t2" else "train")
    assert together == {1: 2, 2: 1} and apart == {}


def test_thresholds_are_configurable():
    threads = [thread(HEAT_PUMP, 1), thread(HEAT_PUMP_AGAIN, 2)] + [thread(t, i + 3) for i, t in enumerate(UNRELATED)]
    stats = chunk_context(threads).stats
    cosine = exact_cosine(HEAT_PUMP, HEAT_PUMP_AGAIN, stats)
    overlap = word_overlap(HEAT_PUMP, HEAT_PUMP_AGAIN)
    assert mined(ParaphraseTask(min_cosine=cosine - 0.01), threads)[1]
    assert not mined(ParaphraseTask(min_cosine=cosine + 0.01), threads)[1]
    assert not mined(ParaphraseTask(max_overlap=overlap - 0.01), threads)[1]
    with pytest.raises(ValueError):
        ParaphraseTask(min_cosine=0)


def test_posts_sharing_fewer_than_min_shared_words_are_not_partners():
    texts = ["Thank you! Going out to trim them now", "Writing all this down, thank you!"] + UNRELATED[:3]
    threads = [thread(text, i + 1) for i, text in enumerate(texts)]
    assert mined(ParaphraseTask(min_shared=1), threads)[1] == {1: 2, 2: 1}  # one shared rare word: "thank"
    assert mined(ParaphraseTask(), threads)[1] == {}


def test_the_best_partner_is_chosen_and_ties_go_to_the_earlier_post():
    threads = [thread(HEAT_PUMP, 1), thread(HEAT_PUMP_AGAIN, 2), thread(HEAT_PUMP_AGAIN, 3)] + \
              [thread(t, i + 4) for i, t in enumerate(UNRELATED)]
    _, partners = mined(ParaphraseTask(), threads)
    assert partners[1] == 2


def test_most_deliberate_pairs_of_the_bundled_sample_are_found():
    # The bundled sample pairs the post on line i with a rewording of it on line i + 87, for i = 3, 7 … 59
    # (0-based), 15 pairs per cluster; nothing else in it is meant as a paraphrase.
    found, wrong = 0, 0
    for cluster in ("cluster_0", "cluster_1"):
        lines = (ROOT / "data" / "sample" / f"{cluster}.jsonl").read_bytes().splitlines()
        threads = [parse_thread(raw, cluster=cluster, line=n + 1) for n, raw in enumerate(lines)]
        threads = [t for t in threads if t.anchor_post() is not None]
        _, partners = mined(ParaphraseTask(), threads)
        deliberate = {i + 1: i + 88 for i in range(3, 60, 4)} | {i + 88: i + 1 for i in range(3, 60, 4)}
        found += sum(partners.get(line) == partner for line, partner in deliberate.items())
        wrong += sum(deliberate.get(line) != partner for line, partner in partners.items())
    assert found >= 50 and wrong <= 2  # of 60 directed pairs


@settings(max_examples=60, deadline=None)
@given(picks=st.lists(st.sampled_from([HEAT_PUMP, HEAT_PUMP_AGAIN] + UNRELATED), min_size=2, max_size=12),
       template_set=st.sampled_from(["default", "concise"]), seed=st.integers(0, 2**32 - 1))
def test_every_pair_meets_both_thresholds_and_nothing_is_unfilled(picks, template_set, seed):
    threads = [thread(text, i + 1) for i, text in enumerate(picks)]
    task = ParaphraseTask().bind("paraphrase", TemplateSet(template_set))
    ctx = chunk_context(threads)
    task.begin_chunk(ctx)
    for t in threads:
        if task.decline_reason(t, ctx) is not None:
            continue
        row = task.build(t, ctx, Draws(np.random.default_rng(seed)))
        post, partner = t.anchor_post().text, row.response
        assert not UNFILLED.search(row.instruction) and post in row.instruction
        assert partner in picks and partner != post and row.meta["thread_ids"][0] != row.meta["thread_ids"][1]
        assert exact_cosine(post, partner, ctx.stats) >= task.min_cosine - 1e-12
        assert word_overlap(post, partner) <= task.max_overlap


def test_paraphrase_pairs_never_cross_the_split(tmp_path):
    run = run_pipeline(tmp_path, "mix=none", "output=alpaca", "split.validation_fraction=0.5",
                       "+task@tasks.paraphrase=paraphrase", "tasks.needle.weight=0",
                       "tasks.keyword_post.weight=0", "tasks.completion.weight=0")
    sides = {}
    for split in ("train", "validation"):
        rows = [r for path in sorted((run / split).glob("*.jsonl")) for r in read_jsonl(path)]
        assert rows
        sides[split] = {thread_id for r in rows for thread_id in r["meta"]["thread_ids"]}
    assert not sides["train"] & sides["validation"]


def test_paraphrase_rows_on_the_real_sample(tmp_path, shared_sample):
    run = run_only(tmp_path, "paraphrase", f"source.path={shared_sample / 'released'}", "output=alpaca")
    rows = rows_of(run)
    assert rows and all(r["task"] == "paraphrase" for r in rows)
    for row in rows:
        assert row["output"] not in row["instruction"] and word_overlap(row["instruction"], row["output"]) <= 0.6
