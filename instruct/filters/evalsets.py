"""Evaluation files, read into the texts a training set must not contain.

Four shapes are recognised from the file itself:

- BluePrint's Batch input (``batchinput.jsonl``): ``{"custom_id", "body": {"messages": [...]}}`` per line. Each
  message's ``content`` is ``"<role or user<k>>:\\n"`` followed by the message as JSON (its ``text`` is taken) or
  by plain text (a system prompt, an instruction row). ``custom_id`` (``task-<cluster>-<n>``) is the released
  thread's ``id``.
- BluePrint's solutions (``solutions.json``): ``{custom_id: {"ground_truth": "assistant:\\n" + <JSON>, …}}``.
- cluster files of either shape (``{"thread": [...], "id"}`` or a bare list of messages); a thread's ``id``
  counts only when the record has one (a list-shaped line's ``<cluster>:<line>`` names nothing outside it).
- any other JSONL: one object per line, its text under ``decontaminate.text_field`` (a string or a list of
  strings); an ``id`` (or ``custom_id``) field, when present, is an evaluation id too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import orjson

from instruct.errors import InstructError
from instruct.parsing import Reject, parse_thread

_ROLE_PREFIX = re.compile(r"^[A-Za-z_]*\d*:\n")  # "user0:\n", "assistant:\n", "system:\n"


@dataclass(slots=True)
class EvalRecord:
    """One evaluation item.

    Args:
        eval_id: its id (``custom_id``, thread id, or ``<file>:<line>``).
        texts: its texts in order (prompt messages, then answers).
        thread_id: the training thread id it is built from, when the file says so.
    """

    eval_id: str
    texts: list[str]
    thread_id: str | None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def message_text(content: object) -> str | None:
    """The text of one Batch-input or solutions message: the role prefix removed, the JSON's ``text`` taken
    (None for an action-only message), or the plain text itself."""
    if not isinstance(content, str):
        return None
    body = _ROLE_PREFIX.sub("", content, count=1)
    if body.startswith("{"):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if isinstance(parsed, dict):
            text = parsed.get("text")
            return text if isinstance(text, str) and text else None
    return body or None


def shape_of(path: Path, first: object) -> str:
    if path.suffix == ".json":
        return "solutions"
    if isinstance(first, dict) and "custom_id" in first and "body" in first:
        return "batch_input"
    if isinstance(first, list) or (isinstance(first, dict) and "thread" in first):
        return "cluster"
    return "jsonl"


def read_eval_file(path: Path, text_field: str) -> tuple[str, Iterator[EvalRecord]]:
    """The file's shape and its records, in file order.

    Raises:
        InstructError: the file is missing, unreadable or in no known shape (the path is named).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InstructError(f"decontaminate.paths: cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix == ".json":
        try:
            solutions = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InstructError(f"decontaminate.paths: {path} is not valid JSON: {exc}") from None
        if not isinstance(solutions, dict) or not all(isinstance(v, dict) and "ground_truth" in v
                                                      for v in solutions.values()):
            raise InstructError(f"decontaminate.paths: {path} is not a BluePrint solutions file "
                                "({custom_id: {\"ground_truth\": …}})")
        return "solutions", _solutions(solutions)
    lines = data.splitlines()
    first = None
    for raw in lines:
        if raw.strip():
            try:
                first = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InstructError(f"decontaminate.paths: {path}: first line is not JSON: {exc}") from None
            break
    if first is None:
        raise InstructError(f"decontaminate.paths: {path} is empty")
    shape = shape_of(path, first)
    reader = {"batch_input": _batch_input, "cluster": _cluster_file, "jsonl": _plain}[shape]
    return shape, reader(path, lines, text_field)


def _load(path: Path, number: int, raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InstructError(f"decontaminate.paths: {path} line {number}: invalid JSON: {exc}") from None


def _solutions(solutions: dict) -> Iterator[EvalRecord]:
    for custom_id, solution in solutions.items():
        text = message_text(solution.get("ground_truth"))
        yield EvalRecord(str(custom_id), [text] if text else [], str(custom_id))


def _batch_input(path: Path, lines: list[bytes], text_field: str) -> Iterator[EvalRecord]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        record = _load(path, number, raw)
        messages = (record.get("body") or {}).get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or "custom_id" not in record:
            raise InstructError(f"decontaminate.paths: {path} line {number}: not a Batch request "
                                "({\"custom_id\", \"body\": {\"messages\": […]}})")
        texts = [text for text in (message_text(m.get("content")) if isinstance(m, dict) else None
                                   for m in messages) if text]
        yield EvalRecord(str(record["custom_id"]), texts, str(record["custom_id"]))


def _cluster_file(path: Path, lines: list[bytes], text_field: str) -> Iterator[EvalRecord]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            thread = parse_thread(raw, cluster=path.stem, line=number)
        except Reject as reject:
            raise InstructError(f"decontaminate.paths: {path} line {number}: {reject}") from None
        has_id = "id" in thread.fields
        yield EvalRecord(thread.id if has_id else f"{path.name}:{number}",
                         [m.text for m in thread.messages if m.text], thread.id if has_id else None)


def _plain(path: Path, lines: list[bytes], text_field: str) -> Iterator[EvalRecord]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        record = _load(path, number, raw)
        value = record.get(text_field) if isinstance(record, dict) else None
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InstructError(f"decontaminate.paths: {path} line {number}: no string (or list of strings) "
                                f"under decontaminate.text_field={text_field!r}")
        own_id = record.get("id", record.get("custom_id"))
        yield EvalRecord(str(own_id) if own_id is not None else f"{path.name}:{number}", texts,
                         str(own_id) if own_id is not None else None)
