"""The dataset card (README.md in the run folder): Hugging Face front matter, then what is in the data."""

from __future__ import annotations

from pathlib import Path

import yaml

from instruct.rundir import atomic_open

_LOADABLE = {"messages", "alpaca", "sharegpt"}  # blueprint lines are bare lists, not objects


def _front_matter(manifest: dict) -> dict:
    fmt = manifest["config"]["output"]["format"]
    front = {
        "license": "cc-by-sa-3.0" if manifest["counts"]["dolly"] else "mit",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["instruction-tuning", "social-media", "bluesky", "blueprint", "synthetic-instructions"],
        "pretty_name": f"instruct: {manifest['run_dir']}",
    }
    if fmt in _LOADABLE:
        splits = sorted({path.split("/")[0] for path in manifest["outputs"]})
        front["configs"] = [{"config_name": "default",
                             "data_files": [{"split": s, "path": f"{s}/*.jsonl"} for s in splits]}]
    return front


def _llm_note(manifest: dict) -> list[str]:
    """Which rows an LLM answered (responder != none): they are not from the data."""
    responder = manifest.get("responder") or {}
    if responder.get("name", "none") == "none":
        return []
    tasks = [task for task in responder["tasks"] if task in manifest["counts"]["per_task"]]
    note = (f"With `responder={responder['name']}` that does not hold for {', '.join(tasks) or 'any task'}: their "
            f"responses were written by the LLM `{responder['model']}` ({responder['rows_llm']} rows, "
            f"`meta.response_source: llm`); {responder['rows_rejected']} rows without a usable answer were left "
            f"out (see `rejects.jsonl`).")
    if responder.get("pending"):
        note += f" {responder['pending']} rows wait for a Batch answer (`llm_requests.jsonl`, `pending/`)."
    return [note, ""]


def _filters_section(manifest: dict) -> list[str]:
    """What the filter stage removed (decontamination, duplicates, token budget) and the tokens per task."""
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
    lines += ["", "| task | rows | mean tokens | p50 | p95 | max |", "|---|---|---|---|---|---|"]
    for name, stats in filters["tokens_per_task"].items():
        lines.append(f"| {name} | {stats['rows']} | {stats['mean']} | {stats['p50']} | {stats['p95']} | {stats['max']} |")
    return lines + [""]


def write_card(run_dir: Path, manifest: dict) -> None:
    counts = manifest["counts"]
    fmt = manifest["config"]["output"]["format"]
    lines = ["---", yaml.safe_dump(_front_matter(manifest), sort_keys=False).strip(), "---", "",
             f"# {manifest['run_dir']}", "",
             "Instruction-tuning rows built by `instruct` from BluePrint Bluesky threads"
             + (", mixed with Dolly-format instructions." if counts["dolly"] else "."), "",
             f"- Format: `{fmt}`; seed {manifest['seed']}; version id `{manifest['version_id']}`.",
             f"- Rows: {counts['rows']} ({counts['generated']} generated, {counts['dolly']} Dolly); "
             f"Dolly fraction requested {manifest['mix']['requested_dolly_fraction']}, "
             f"realized {manifest['mix']['realized_dolly_fraction']:.4f}.",
             f"- Input lines: {counts['lines_read']} read, {counts['threads_used']} used, "
             f"{counts['sampled_out']} sampled out, {counts['rejected']} rejected (see `rejects.jsonl`).", "",
             "## Rows per task", "", "| task | offered | produced | declined (top reason) |", "|---|---|---|---|"]
    for name, task in counts["per_task"].items():
        top = max(task["declined"].items(), key=lambda kv: kv[1], default=None)
        reason = f"{sum(task['declined'].values())} ({top[0]})" if top else "0"
        lines.append(f"| {name} | {task['offered']} | {task['produced']} | {reason} |")
    lines += ["", *_filters_section(manifest)]
    lines += ["## Files", "", "| file | rows | generated | Dolly |", "|---|---|---|---|"]
    for path, out in manifest["outputs"].items():
        lines.append(f"| `{path}` | {out['rows']} | {out['generated']} | {out['dolly']} |")
    lines += ["", "## Where responses come from", "",
              "Every response is taken from the data: a real post, the rest of a real post, a message of the "
              "haystack, or a label from a configured label source. Summaries are *extractive*: the most "
              "central messages of the conversation (TF-IDF), not written by a model."
              if "summarization" in counts["per_task"] else
              "Every response is taken from the data: a real post, the rest of a real post, or a message of "
              "the haystack.", "",
              *_llm_note(manifest),
              "## Licence", "",
              "BluePrint threads: MIT (ComplexData-MILA/BluePrint), text PII-scrubbed by its authors.",
              ]
    if counts["dolly"]:
        dolly_file = Path(manifest["inputs"]["dolly"]["file"]).name
        lines.append(f"Dolly-format rows from `{dolly_file}`: databricks-dolly-15k is CC BY-SA 3.0; a dataset that "
                     "contains its rows must be shared under CC BY-SA 3.0 and credit Databricks.")
    lines += ["", "`manifest.json` holds the full config, input hashes and every count; `.hydra/` the composed "
              "config and the overrides."]
    with atomic_open(run_dir / "README.md") as handle:
        handle.write(("\n".join(lines) + "\n").encode())
