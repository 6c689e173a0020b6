"""The dataset card (README.md in the run folder): Hugging Face front matter, then what is in the data.

Each section is one function of the manifest (and, where it looks at rows, of the run's ``RowStats``) returning
its lines, and ``SECTIONS`` puts them in order, so a section is added or changed on its own. An unfinished run
gets ``write_incomplete_card`` instead: its front matter points ``load_dataset`` at no file, so the folder
refuses to load until the run is complete.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import orjson
import yaml

from instruct.formats import sidecar_path
from instruct.rundir import atomic_open
from instruct.tasks.summarization import content_words_phrase
from instruct.trainers import (LOADABLE, axolotl_snippet, hf_features, llama_factory_snippet, trl_snippet,
                               write_dataset_info)

log = logging.getLogger("instruct")

CHART = "lengths.png"
EXAMPLES_PER_TASK = 2
EXAMPLE_CHARS = 300  # each field of an example row is cut to this many characters
# At most this many rows are parsed for the lengths (every k-th row of a larger run): the figures of a 250 k-row
# run then cost a streamed read of its files, not a second parse of every row.
STATS_ROWS = 20_000


@dataclass
class TaskRows:
    """What the card shows of one task's rows (Dolly counts as a task here).

    Args:
        rows: how many rows it has in the data files.
        prompt_chars / response_chars: the character length of each row's prompt and response.
        examples: the first rows, as (prompt, response).
    """

    rows: int = 0
    prompt_chars: list[int] = field(default_factory=list)
    response_chars: list[int] = field(default_factory=list)
    examples: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RunRows:
    """Args:
        tasks: task → its TaskRows, Dolly last.
        step: the figures are of every ``step``-th row (1: of every row).
    """

    tasks: dict[str, TaskRows]
    step: int = 1


def prompt_and_response(record, fmt: str) -> tuple[str, str]:
    """The text the model reads and the text it learns to write, from one line of any format."""
    if fmt == "messages":
        turns = record["messages"]
        return "\n\n".join(t["content"] for t in turns[:-1]), turns[-1]["content"]
    if fmt == "sharegpt":
        turns = record["conversations"]
        return "\n\n".join(t["value"] for t in turns[:-1]), turns[-1]["value"]
    if fmt == "alpaca":
        return (record["instruction"] + ("\n\n" + record["input"] if record["input"] else ""), record["output"])
    return "\n\n".join(t["content"] for t in record[:-1]), record[-1]["content"]  # blueprint


def row_stats(run_dir: Path, manifest: dict, max_rows: int = STATS_ROWS) -> RunRows:
    """Lengths and the first examples per task, from every ``step``-th row of the data files (streamed), so
    the card costs at most ``max_rows`` parsed rows however large the run. Row counts are exact either way:
    counted here when every row is read, else the manifest's."""
    fmt = manifest["config"]["output"]["format"]
    total = manifest["counts"]["rows"]
    step = max(1, -(-total // max_rows))
    stats: dict[str, TaskRows] = {}
    for path in manifest["outputs"]:
        data = run_dir / path
        lines = _every(data, step)
        # The sidecar holds the task of a format without room for it, line for line.
        pairs = (zip(lines, _every(sidecar_path(data), step), strict=True) if fmt not in LOADABLE
                 else ((line, None) for line in lines))
        for line, meta in pairs:
            record = orjson.loads(line)
            task = orjson.loads(meta)["task"] if meta is not None else record["task"]
            prompt, response = prompt_and_response(record, fmt)
            entry = stats.setdefault(task, TaskRows())
            entry.rows += 1
            entry.prompt_chars.append(len(prompt))
            entry.response_chars.append(len(response))
            if len(entry.examples) < EXAMPLES_PER_TASK:
                entry.examples.append((prompt, response))
    if step > 1:  # exact counts from the manifest; a task too rare to be sampled still gets its line
        exact = {name: task["produced"] for name, task in manifest["counts"]["per_task"].items()}
        exact["dolly"] = manifest["counts"]["dolly"]
        for name, rows in exact.items():
            if rows:
                stats.setdefault(name, TaskRows()).rows = rows
    return RunRows(dict(sorted(stats.items(), key=lambda kv: (kv[0] == "dolly", kv[0]))), step)


def _every(path: Path, step: int) -> Iterator[bytes]:
    """Lines 0, step, 2 * step, … of a file; the lines between are skipped in C, never handed to Python."""
    with open(path, "rb") as handle:
        yield from itertools.islice(handle, 0, None, step)


def _figures(values) -> str:
    if not values:
        return "–"
    array = np.asarray(values)
    return f"{int(np.median(array))} / {int(np.percentile(array, 95))} / {int(array.max())}"


# Sections ------------------------------------------------------------------------------------------------


def front_matter(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    fmt = manifest["config"]["output"]["format"]
    front = {
        "license": "cc-by-sa-3.0" if manifest["counts"]["dolly"] else "mit",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["instruction-tuning", "social-media", "bluesky", "blueprint", "synthetic-instructions"],
        "pretty_name": f"instruct: {manifest['run_dir']}",
    }
    if fmt in LOADABLE:
        front["configs"] = [{"config_name": "default",
                             "data_files": [{"split": s, "path": f"{s}/*.jsonl"} for s in _splits(manifest)]}]
        front["dataset_info"] = {"features": hf_features(fmt)}
    return ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", ""]


def filters(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    """What the filter stage removed: evaluation overlap, duplicates, rows over the token budget."""
    filters = manifest.get("filters")
    if not filters:
        return []
    removed = {}
    for reasons in [*filters["removed_per_cluster"].values(), filters["removed_dolly"]]:
        for reason, count in reasons.items():
            removed[reason] = removed.get(reason, 0) + count
    decontaminate = filters["decontaminate"]
    lines = ["## Filters", ""]
    if decontaminate:
        files = ", ".join(f"`{Path(f['file']).name}` ({f['removed']} removed)" for f in decontaminate["eval_files"])
        lines.append(f"- Decontaminated against {files}: a thread or Dolly row sharing an evaluation id or a "
                     f"{decontaminate['ngram']}-word n-gram with them was removed before any task saw it "
                     f"(`contamination.jsonl`).")
    else:
        lines.append("- Not decontaminated against any evaluation set.")
    dedup = filters["dedup"]
    lines.append(f"- Near-duplicate posts within a cluster removed (MinHash LSH, Jaccard >= {dedup['threshold']} over "
                 f"{dedup['shingle']}-word shingles), the first kept." if dedup else "- Duplicates kept.")
    budget = filters["budget"]
    lines.append(f"- Tokens counted by {budget['counter']}; "
                 + (f"rows over {budget['max_tokens']} tokens were dropped, never cut." if budget["max_tokens"]
                    else "no length limit."))
    if removed:
        lines.append("- Removed: " + ", ".join(f"{count} {reason}" for reason, count in sorted(removed.items())) + ".")
    return lines + [""]


def summary(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    counts = manifest["counts"]
    return [f"# {manifest['run_dir']}", "",
            "Instruction-tuning rows built by `instruct` from BluePrint Bluesky threads"
            + (", mixed with Dolly-format instructions." if counts["dolly"] else "."), "",
            f"- Format: `{manifest['config']['output']['format']}`; seed {manifest['seed']}; version id "
            f"`{manifest['version_id']}`.",
            f"- Rows: {counts['rows']} ({counts['generated']} generated, {counts['dolly']} Dolly); "
            f"Dolly fraction requested {manifest['mix']['requested_dolly_fraction']}, "
            f"realized {manifest['mix']['realized_dolly_fraction']:.4f}.",
            f"- Input lines: {counts['lines_read']} read, {counts['threads_used']} used, "
            f"{counts['sampled_out']} sampled out, {counts['rejected']} rejected (see `rejects.jsonl`).", ""]


def rows_per_task(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    """Offered, produced and not produced (declined, or drawn but failed), with Dolly as the last line."""
    lines = ["## Rows per task", "", "| task | offered | produced | declined (top reason) | failed (top reason) |",
             "|---|---|---|---|---|"]

    def top(reasons: dict) -> str:
        if not reasons:
            return "0"
        reason, _ = max(reasons.items(), key=lambda kv: kv[1])
        return f"{sum(reasons.values())} ({reason})"

    for name, task in manifest["counts"]["per_task"].items():
        lines.append(f"| {name} | {task['offered']} | {task['produced']} | {top(task['declined'])} | "
                     f"{top(task.get('failed', {}))} |")
    if manifest["counts"]["dolly"]:
        lines.append(f"| dolly | – | {manifest['counts']['dolly']} | – | – |")
    return lines + [""]


def lengths(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    """Characters of prompts and responses (from the sampled rows), and tokens of both (exact, every row: the
    budget's counts, by a tokenizer when ``budget.tokenizer`` is set, else the characters-per-token estimate)."""
    sampled = f" (characters measured on one row in {stats.step})" if stats.step > 1 else ""
    tokens = (manifest.get("filters") or {}).get("tokens_per_task", {})
    counter = (manifest.get("filters") or {}).get("budget", {}).get("counter", "")
    lines = ["## Lengths", "",
             "Characters of the prompt (everything before the answer) and of the response: median / 95th "
             f"percentile / max{sampled}. Tokens of prompt + response, every row, counted by {counter}"
             + ("" if counter.startswith("tokenizer") else " (set `budget.tokenizer=` to a local tokenizer.json "
                                                        "for exact counts)")
             + ": median / 95th percentile / max." + (f" Distributions: [{CHART}]({CHART})."
                                                     if (run_dir / CHART).exists() else ""), "",
             "| task | rows | prompt chars | response chars | tokens | mean tokens |", "|---|---|---|---|---|---|"]
    for task, entry in stats.tasks.items():
        figures = tokens.get(task) or {}
        token_text = (f"{figures['p50']} / {figures['p95']} / {figures['max']} | {figures['mean']}"
                      if figures.get("rows") else "– | –")
        lines.append(f"| {task} | {entry.rows} | {_figures(entry.prompt_chars)} | {_figures(entry.response_chars)} | "
                     f"{token_text} |")
    return lines + [""]


def _shorten(text: str) -> str:
    text = text if len(text) <= EXAMPLE_CHARS else (text[:EXAMPLE_CHARS] + f" … [{len(text) - EXAMPLE_CHARS} more "
                                                                           "characters]")
    return "\n".join("    " + line for line in text.splitlines() or [""])


def examples(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    lines = ["## Examples", "", f"The first {EXAMPLES_PER_TASK} rows of each task{' that were measured' if stats.step > 1 else ''}, each field cut to "
             f"{EXAMPLE_CHARS} characters (`python -m instruct show {run_dir} --task <task>` prints more).", ""]
    for task, entry in stats.tasks.items():
        if not entry.examples:
            continue
        lines += [f"### {task}", ""]
        for number, (prompt, response) in enumerate(entry.examples, 1):
            lines += [f"Example {number}, prompt:", "", _shorten(prompt), "", "response:", "", _shorten(response), ""]
    return lines


def training(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    fmt = manifest["config"]["output"]["format"]
    splits = _splits(manifest)
    if fmt not in LOADABLE:
        return ["## Training", "",
                "`blueprint` lines are bare JSON lists of turns, as BluePrint's `finetuning/finetuning.py` reads "
                "them (point it at `train/cluster_<id>.jsonl`). HF `datasets`' JSON reader cannot read bare "
                "lists, so `load_dataset` does not load this folder; read it as finetuning.py does:", "",
                "```python", "import json", "from datasets import Dataset", "",
                f'with open("{run_dir}/train/cluster_0.jsonl") as f:',
                '    ds = Dataset.from_dict({"chains": [json.loads(line) for line in f]})', "```", "",
                "Each row's lineage is in `meta/<split>/cluster_<id>.jsonl`, line for line. For LLaMA-Factory, "
                "Axolotl or TRL, build the run with `output=messages`.", ""]
    return ["## Training", "",
            "`load_dataset` reads this folder by name (the front matter above names each split's files):", "",
            "```python", "from datasets import load_dataset", f'ds = load_dataset("{run_dir}")', "```", "",
            "**LLaMA-Factory**: `dataset_info.json` in this folder describes every split; in the training YAML:", "",
            "```yaml", llama_factory_snippet(run_dir, splits), "```", "",
            "**Axolotl** (0.19):", "", "```yaml", axolotl_snippet(run_dir, fmt, splits), "```", "",
            "**TRL** (`SFTTrainer`):", "", "```python", trl_snippet(run_dir, fmt, splits), "```", ""]


def files(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    lines = ["## Files", "", "| file | rows | generated | Dolly |", "|---|---|---|---|"]
    for path, out in manifest["outputs"].items():
        lines.append(f"| `{path}` | {out['rows']} | {out['generated']} | {out['dolly']} |")
    return lines + [""]


def provenance(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    per_task = manifest["counts"]["per_task"]
    summarization = manifest.get("tasks", {}).get("summarization", {})
    shared = summarization.get("feed_min_shared", 1)
    rare = summarization.get("feed_rare_zipf", 8)
    one_rare = f", one of them rare in general English (Zipf < {rare:g})," if rare < 8 else ""
    lines = ["## Where responses come from", "",
             "Every response is taken from the data: a real post, the rest of a real post, a message of the "
             "haystack, or a label from a configured label source. Summaries are *extractive*: the messages "
             "that share the most content words with the rest of the conversation or feed (TF-IDF), not "
             "written by a model; a post of a feed is picked only if it shares "
             f"{content_words_phrase(shared)}{one_rare} with another post the answer quotes, so an answer is one "
             "subject. A feed is a stretch of consecutive short threads that makes one row, so no post is shown "
             "in two summaries."
             if "summarization" in per_task else
             "Every response is taken from the data: a real post, the rest of a real post, or a message of "
             "the haystack.", ""]
    responder = manifest.get("responder") or {}
    if responder.get("name", "none") != "none":  # which rows an LLM answered: they are not from the data
        backtranslated = responder.get("instruction_tasks", [])
        tasks = [task for task in responder["tasks"] if task in per_task and task not in backtranslated]
        note = (f"With `responder={responder['name']}` that does not hold for {', '.join(tasks) or 'any task'}: "
                f"their responses were written by the LLM `{responder['model']}` ({responder['rows_llm']} rows, "
                f"`meta.response_source: llm`); {responder['rows_rejected']} rows without a usable answer were "
                f"left out (see `rejects.jsonl`).")
        if backtranslated:  # instruction backtranslation: the model named the topic, the post is real
            note += (f" For {', '.join(backtranslated)} the LLM wrote the instruction instead (it named the topic "
                     f"of the real post, {responder.get('rows_llm_instruction', 0)} rows, "
                     f"`meta.instruction_source: llm`); the responses are the real posts.")
        if responder.get("pending"):
            note += f" {responder['pending']} rows wait for a Batch answer (`llm_requests.jsonl`, `pending/`)."
        lines += [note, ""]
    return lines


def licence(manifest: dict, run_dir: Path, stats: RunRows) -> list[str]:
    lines = ["## Licence", "", "BluePrint threads: MIT (ComplexData-MILA/BluePrint), text PII-scrubbed by its authors."]
    if manifest["counts"]["dolly"]:
        dolly_file = Path(manifest["inputs"]["dolly"]["file"]).name
        lines.append(f"Dolly-format rows from `{dolly_file}`: databricks-dolly-15k is CC BY-SA 3.0; a dataset that "
                     "contains its rows must be shared under CC BY-SA 3.0 and credit Databricks.")
    return lines + ["", "`manifest.json` holds the full config, input hashes and every count; `.hydra/` the "
                    "composed config and the overrides."]


SECTIONS = (front_matter, summary, rows_per_task, filters, lengths, examples, training, files, provenance, licence)


def _splits(manifest: dict) -> list[str]:
    return sorted({path.split("/")[0] for path in manifest["outputs"]})


def write_card(run_dir: Path, manifest: dict) -> None:
    """The card, the length chart beside it and LLaMA-Factory's dataset_info.json."""
    card = manifest["config"].get("card", {})
    stats = row_stats(run_dir, manifest)
    write_dataset_info(run_dir, manifest["config"]["output"]["format"], _splits(manifest))
    if card.get("chart", True):
        from instruct.chart import write_chart  # matplotlib is imported only here

        write_chart(run_dir / CHART, stats.tasks, manifest)
    lines = [line for section in SECTIONS for line in section(manifest, run_dir, stats)]
    with atomic_open(run_dir / "README.md") as handle:
        handle.write(("\n".join(lines) + "\n").encode())


def write_incomplete_card(run_dir: Path) -> None:
    """The card of a run that has not finished: ``load_dataset(run_dir)`` fails naming this state instead of
    loading the clusters written so far as if they were the dataset."""
    front = {"configs": [{"config_name": "default", "data_files": [
        {"split": "train", "path": "INCOMPLETE_RUN-no_manifest.json-finish_it_with_resume/*.jsonl"}]}]}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {run_dir.name}: incomplete", "",
             "This run has not finished (or was killed): the data files here are only the clusters done so far. "
             f"Finish it with `python run.py resume={run_dir}`; the complete card replaces this one."]
    with atomic_open(run_dir / "README.md") as handle:
        handle.write(("\n".join(lines) + "\n").encode())
