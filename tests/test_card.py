"""The dataset card shows what is inside: per task two examples, the rows (Dolly included), length figures that
match the files, failures beside declines, a chart beside it; token counts with a local tokenizer."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pytest
from conftest import manifest_of, read_jsonl, run_pipeline

from instruct.card import CHART, EXAMPLES_PER_TASK, prompt_and_response
from instruct.errors import InstructError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_pipeline(tmp_path_factory.mktemp("card"), "tasks=all", "split.validation_fraction=0.2")


def section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def rows_by_task(run, splits=("train", "validation")) -> dict[str, list[tuple[str, str]]]:
    found = defaultdict(list)
    for split in splits:
        for path in sorted((run / split).glob("*.jsonl")):
            for record in read_jsonl(path):
                found[record["task"]].append(prompt_and_response(record, "messages"))
    return found


def test_rows_per_task_has_dolly_and_the_failures(run):
    card, manifest = (run / "README.md").read_text(), manifest_of(run)
    table = section(card, "Rows per task")
    assert f"| dolly | – | {manifest['counts']['dolly']} | – | – |" in table
    for name, task in manifest["counts"]["per_task"].items():
        failed = sum(task["failed"].values())
        line = next(row for row in table.splitlines() if row.startswith(f"| {name} |"))
        assert line.split(" | ")[4].startswith(str(failed)), line
    assert any(sum(t["failed"].values()) for t in manifest["counts"]["per_task"].values()), "a task failed a build"


def test_length_figures_are_those_of_the_files(run):
    lengths = section((run / "README.md").read_text(), "Lengths")
    rows = rows_by_task(run)
    for task, pairs in rows.items():
        line = next(row for row in lengths.splitlines() if row.startswith(f"| {task} |"))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        prompts = np.array([len(p) for p, _ in pairs])
        assert int(cells[1]) == len(pairs)
        assert cells[2] == f"{int(np.median(prompts))} / {int(np.percentile(prompts, 95))} / {prompts.max()}"
        assert cells[3].endswith(f" / {max(len(r) for _, r in pairs)}")
    assert "dolly" in rows and f"[{CHART}]({CHART})" in lengths


def test_two_shortened_examples_per_task_are_the_first_rows(run):
    examples = section((run / "README.md").read_text(), "Examples")
    for task, pairs in rows_by_task(run, ("train",)).items():
        block = examples.split(f"### {task}\n", 1)[1].split("\n### ", 1)[0]
        assert block.count("prompt:") == EXAMPLES_PER_TASK
        first_prompt, first_response = pairs[0]
        assert first_prompt[:60].splitlines()[0] in block
        assert ("    " + first_response[:60].splitlines()[0]) in block
    assert re.search(r"… \[\d+ more characters\]", examples), "long prompts are cut"


def test_the_chart_is_a_png_beside_the_card(run):
    data = (run / CHART).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_token_counts_with_a_local_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(["the river flooded the park trail again"] * 10,
                                  tokenizers.trainers.BpeTrainer(vocab_size=200, special_tokens=["[UNK]"]))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    run = run_pipeline(tmp_path, "mix=none", f"budget.tokenizer={tmp_path}", "card.chart=false")
    lengths = section((run / "README.md").read_text(), "Lengths")
    assert "counted by tokenizer: " in lengths
    pairs = rows_by_task(run, ("train",))["completion"]
    # the budget counts the prompt and the response apart (a chat template puts them in separate turns)
    counts = [len(tokenizer.encode(p, add_special_tokens=False).ids) + len(tokenizer.encode(r, add_special_tokens=False).ids)
              for p, r in pairs]
    line = next(row for row in lengths.splitlines() if row.startswith("| completion |"))
    assert f" / {max(counts)} | " in line


def test_rows_by_split_counts_every_row_dolly_included(run):
    manifest = manifest_of(run)
    by_split = manifest["counts"]["rows_by_split"]
    assert by_split == {s: sum(len(read_jsonl(p)) for p in (run / s).glob("*.jsonl")) for s in ("train", "validation")}
    assert sum(by_split.values()) == manifest["counts"]["rows"]
    assert sum(manifest["counts"]["generated_by_split"].values()) == manifest["counts"]["generated"]


def test_a_large_run_is_measured_on_a_bounded_sample_with_exact_row_counts(run):
    from instruct.card import row_stats

    manifest = manifest_of(run)
    sampled = row_stats(run, manifest, max_rows=50)
    assert sampled.step == -(-manifest["counts"]["rows"] // 50)
    assert sum(len(entry.prompt_chars) for entry in sampled.tasks.values()) <= 50 + len(manifest["outputs"])
    exact = {name: t["produced"] for name, t in manifest["counts"]["per_task"].items() if t["produced"]}
    assert {name: entry.rows for name, entry in sampled.tasks.items()} == {**exact, "dolly": manifest["counts"]["dolly"]}
