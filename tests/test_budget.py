"""Token budgets (instruct/filters/budget.py): rows over budget.max_tokens are dropped and counted per task,
never cut; the needle sizes its haystack to tasks.needle.max_tokens; token statistics per task are exact and
the same for any worker count. The tokenizer is trained here from the bundled sample: nothing is downloaded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import ROOT, compose_config, data_files, manifest_of, rows_of, run_pipeline

from instruct.errors import InstructError
from instruct.filters.budget import Budget, TokenCounter, length_stats
from instruct.pipeline import generate
from instruct.records import Row


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A WordLevel tokenizer trained on the bundled sample's posts and Dolly rows, saved as tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = []
    for path in sorted((ROOT / "data" / "sample").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            texts += [m.get("text") or "" for m in record.get("thread", [])]
            texts += [record.get(k) or "" for k in ("instruction", "context", "response")]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def _lengths(run: Path, counter: TokenCounter) -> list[tuple[str, int]]:
    return [(row["task"], counter(row["messages"][0]["content"]) + counter(row["messages"][1]["content"]))
            for row in rows_of(run)]


def test_a_row_exactly_at_the_budget_is_kept_and_one_token_more_is_dropped(tokenizer_dir):
    counter = TokenCounter(str(tokenizer_dir), 4.0)
    row = Row("completion", "Finish the post : the park", "is open again", "", {})
    tokens = counter.row_tokens(row)
    assert tokens == 9  # WordLevel over whitespace and punctuation: one token a word or mark
    lengths = Counter()
    assert Budget(counter, tokens).admit(row, lengths) is row and lengths == {tokens: 1}
    assert Budget(counter, tokens - 1).admit(row, lengths) == f"over budget.max_tokens={tokens - 1}"
    assert lengths == {tokens: 1}  # a dropped row is not in the statistics
    assert Budget(counter, tokens - 3).admit(row, Counter(), deferred=True) is row  # an LLM writes the response


def test_without_a_tokenizer_the_estimate_is_used_and_named(tmp_path):
    counter = TokenCounter(None, 4.0)
    assert [counter(t) for t in ("", "abc", "abcd", "abcde")] == [0, 1, 1, 2]
    manifest = manifest_of(run_pipeline(tmp_path))
    assert manifest["filters"]["budget"]["counter"] == "estimate: 4.0 characters per token"
    stats = manifest["filters"]["tokens_per_task"]["needle"]
    assert stats["rows"] == manifest["counts"]["per_task"]["needle"]["produced"]


def test_rows_over_the_budget_are_dropped_and_counted_per_task_never_cut(tmp_path, tokenizer_dir):
    counter = TokenCounter(str(tokenizer_dir), 4.0)
    args = ("tasks=all", "mix=none", f"budget.tokenizer={tokenizer_dir}")
    free = run_pipeline(tmp_path / "free", *args)
    lengths = _lengths(free, counter)
    limit = sorted(n for _, n in lengths)[len(lengths) // 2]  # the median row
    capped = run_pipeline(tmp_path / "capped", *args, f"budget.max_tokens={limit}")
    kept = _lengths(capped, counter)
    assert kept and max(n for _, n in kept) <= limit
    # (a row exactly at the budget: test_a_row_exactly_at_the_budget_is_kept_and_one_token_more_is_dropped; here
    # a dropped row's thread is drawn again, so which rows of the free run recur is not fixed)
    manifest = manifest_of(capped)
    dropped = manifest["filters"]["budget"]["dropped_per_task"]
    assert sum(dropped.values()) > 0
    for task, count in dropped.items():
        assert manifest["counts"]["per_task"][task]["failed"].get(f"over budget.max_tokens={limit}", 0) == count
    # every kept response is a whole one, never a shortened text: none is a proper prefix of the response the
    # uncapped run built for the same thread and task. (The texts need not recur: once a dropped row's thread
    # is drawn again, the draws that follow differ, and with them a completion's cut or a template.)
    free_responses = {(r["meta"]["thread_id"], r["task"]): r["messages"][1]["content"] for r in rows_of(free)}
    compared = 0
    for row in rows_of(capped):
        whole, kept = free_responses.get((row["meta"]["thread_id"], row["task"])), row["messages"][1]["content"]
        if whole is not None:
            assert kept == whole or not whole.startswith(kept)
            compared += 1
    assert compared >= 20  # enough rows to see a cut: 53 of the 299 kept rows on the bundled sample


def test_token_statistics_are_exact(tmp_path, tokenizer_dir):
    counter = TokenCounter(str(tokenizer_dir), 4.0)
    run = run_pipeline(tmp_path, "tasks=paper", "mix=none", f"budget.tokenizer={tokenizer_dir}")
    stats = manifest_of(run)["filters"]["tokens_per_task"]
    for task in ("needle", "keyword_post", "completion"):
        mine = sorted(n for t, n in _lengths(run, counter) if t == task)
        assert stats[task]["rows"] == len(mine) and stats[task]["max"] == mine[-1]
        assert stats[task]["p50"] == mine[(len(mine) + 1) // 2 - 1]
        assert stats[task]["mean"] == round(sum(mine) / len(mine), 2)
    assert length_stats({"3": 1, "10": 19}) == {"rows": 20, "mean": 9.65, "p50": 10, "p95": 10, "max": 10}
    assert length_stats({}) == {"rows": 0, "mean": None, "p50": None, "p95": None, "max": None}


def test_needle_haystacks_are_sized_to_the_token_budget(tmp_path, tokenizer_dir):
    counter = TokenCounter(str(tokenizer_dir), 4.0)
    args = ("tasks=paper", "mix=none", f"budget.tokenizer={tokenizer_dir}", "tasks.needle.max_messages=60")
    free = [r for r in rows_of(run_pipeline(tmp_path / "free", *args)) if r["task"] == "needle"]
    sized = [r for r in rows_of(run_pipeline(tmp_path / "sized", *args, "tasks.needle.max_tokens=300"))
             if r["task"] == "needle"]
    prompts = [counter(r["messages"][0]["content"]) for r in sized]
    assert sized and max(prompts) <= 300
    assert max(counter(r["messages"][0]["content"]) for r in free) > 300  # the budget did bind
    assert sum(prompts) / len(prompts) > 0.8 * 300  # grown to fill it, not shrunk to the minimum
    depths = [d for r in sized for d in r["meta"]["needle_depths"]]
    assert min(depths) < 0.25 and max(depths) > 0.75  # needles stay spread over the whole haystack


def test_filters_on_give_the_same_bytes_for_one_or_two_workers(tmp_path, tokenizer_dir):
    args = ("tasks=all", f"budget.tokenizer={tokenizer_dir}", "budget.max_tokens=400",
            "tasks.needle.max_tokens=350", "source.shard_lines=1")
    one = run_pipeline(tmp_path / "one", *args, "workers=1")
    two = run_pipeline(tmp_path / "two", *args, "workers=2")
    assert data_files(one) == data_files(two)
    assert manifest_of(one)["filters"] == manifest_of(two)["filters"]


def test_a_missing_tokenizer_fails_at_start_naming_it(tmp_path):
    with pytest.raises(InstructError, match=r"budget.tokenizer: no tokenizer file at .*nowhere \(give"):
        generate(compose_config("progress=false", f"budget.tokenizer={tmp_path / 'nowhere'}"), tmp_path / "out")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InstructError, match=r"budget.tokenizer: cannot load .*bad\.json"):
        generate(compose_config("progress=false", f"budget.tokenizer={tmp_path / 'bad.json'}"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_tokenizer_is_part_of_the_version_id(tmp_path, tokenizer_dir):
    estimate = manifest_of(run_pipeline(tmp_path / "a"))["version_id"]
    real = manifest_of(run_pipeline(tmp_path / "b", f"budget.tokenizer={tokenizer_dir}"))["version_id"]
    assert estimate != real
