"""Rows that wait for an LLM response: written by the shards, answered per cluster in the parent.

A shard writes such a row to a ``<split>.pending`` part file and a one-line marker at the row's place in its
data part. Before a cluster's parts are concatenated, ``resolve_pending`` asks the responder for all of the
cluster's pending rows at once (so requests run concurrently), then ``Resolved.rows`` puts each answered row
back at its marker. A row without a usable answer is left out, counted, and written to the rejects; under
``responder=batch`` it waits in ``<run>/pending/<cluster>.jsonl`` instead. The answers decide the bytes, so
the same (cached) answers give the same files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import orjson

from instruct.counts import Counts
from instruct.formats import RecordEncoder
from instruct.records import Row
from instruct.responders.backtranslation import fill_instruction
from instruct.responders.base import Answer, Responder, prompt_of
from instruct.responders.batch import PENDING_DIR
from instruct.rundir import STATE, atomic_open, write_json

# Encoded rows are JSON objects or lists, so no row line can be this.
MARKER = b"#pending\n"


def defer(row: Row, data: BinaryIO, pending: BinaryIO) -> None:
    """Keep ``row`` for the responder: the row in the pending part, a marker at its place in the data part."""
    pending.write(orjson.dumps(asdict(row)) + b"\n")
    data.write(MARKER)


def responder_state(run_dir: Path, cluster: str) -> Path:
    return run_dir / STATE / f"{cluster}.responder.json"


@dataclass
class Resolved:
    """A cluster's answered rows, ready to be put back at their markers.

    Args:
        answers: split → one entry per pending row in order: its encoded (line, meta), or None when it is
            left out (rejected, or pending a Batch answer).
        rejects: reject records (JSON lines) for the run's rejects.jsonl.
    """

    answers: dict[str, list] = field(default_factory=dict)
    rejects: list[bytes] = field(default_factory=list)

    def rows(self, split: str, data_lines: Iterator[bytes], meta_lines: Iterator[bytes] | None
             ) -> Iterator[tuple[bytes, bytes | None]]:
        """The split's generated rows as (line, meta), markers replaced by answered rows."""
        answers = iter(self.answers.get(split, ()))
        for line in data_lines:
            if line == MARKER:
                answer = next(answers)
                if answer is not None:
                    yield answer
            else:
                yield line, next(meta_lines) if meta_lines is not None else None


def resolve_pending(responder: Responder | None, encoder: RecordEncoder, cluster_key: str, cluster_file: str,
                    parts: dict[str, list[Path]], counts: Counts, run_dir: Path) -> Resolved:
    """Answer the cluster's pending rows and take the rows left out off ``counts``.

    Args:
        responder: the run's responder (None: nothing is pending).
        encoder: the output format.
        cluster_key: the cluster.
        cluster_file: its file, for reject records.
        parts: split → the pending part files of the cluster's shards, in shard order.
        counts: the cluster's counts; rows left out are moved from ``produced`` to ``failed``.
        run_dir: the run folder (responder state, and ``pending/`` under responder=batch).
    """
    resolved = Resolved()
    if responder is None:
        return resolved
    rows = {split: [Row(**orjson.loads(line)) for path in paths if path.exists()
                    for line in path.read_bytes().splitlines()] for split, paths in parts.items()}
    requests = {split: [responder.request(row) for row in split_rows] for split, split_rows in rows.items()}
    distinct = {request.key: request for split_requests in requests.values() for request in split_requests}
    results = responder.answer(list(distinct.values()))
    stats = responder.take_stats()
    stats["prompts"] = len(distinct)
    reasons: Counter = Counter()
    backtranslated: set[str] = set()  # tasks whose instructions the model wrote, for the card
    waiting = []
    for split, split_rows in rows.items():
        resolved.answers[split] = []
        for row, request in zip(split_rows, requests[split]):
            result = results[request.key]
            text, reason = responder.judge(result) if isinstance(result, Answer) else (None, result)
            if row.backtranslation:
                backtranslated.add(row.task)
            if text is not None and row.backtranslation:  # the answer is the instruction; the response stays
                reason = fill_instruction(row, text)
                if reason is None:
                    resolved.answers[split].append(encoder.encode(row))
                    stats["rows_llm_instruction"] += 1
                    continue
            elif text is not None:
                row.response = text
                row.reply_json = False  # whatever the model wrote is text, wrapped as such
                row.meta["response_source"] = "llm"
                resolved.answers[split].append(encoder.encode(row))
                stats["rows_llm"] += 1
                continue
            resolved.answers[split].append(None)
            _take_off(counts, row, split, "pending: batch response" if reason is None else f"llm: {reason}")
            if reason is None:
                waiting.append({"custom_id": request.key, "split": split, "request": request.body, "row": asdict(row)})
                stats["pending"] += 1
            else:
                reasons[reason] += 1
                stats["rows_rejected"] += 1
                resolved.rejects.append(orjson.dumps({"file": cluster_file, "line": row.meta.get("line"),
                                                      "reason": f"llm: {reason}", "task": row.task,
                                                      "excerpt": prompt_of(row)[:200]}) + b"\n")
    if waiting:
        (run_dir / PENDING_DIR).mkdir(exist_ok=True)
        with atomic_open(run_dir / PENDING_DIR / f"{cluster_key}.jsonl") as out:
            out.write(b"".join(orjson.dumps(item) + b"\n" for item in waiting))
    write_json(responder_state(run_dir, cluster_key), {"stats": dict(stats), "reasons": dict(reasons),
                                                          "instruction_tasks": sorted(backtranslated)})
    return resolved


def _take_off(counts: Counts, row: Row, split: str, reason: str) -> None:
    counts.rows[split] -= 1
    task = counts.task(row.task)
    task.produced -= 1
    task.failed[reason] += 1
    template = row.meta.get("template_id")
    counts.templates[template] -= 1
    if counts.templates[template] <= 0:
        del counts.templates[template]
