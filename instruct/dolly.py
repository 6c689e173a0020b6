"""Dolly-format instruction files: read and validate once, sample without replacement per output file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from instruct.errors import InstructError
from instruct.records import Row, row_meta

FIELDS = ("instruction", "context", "response")


@dataclass(slots=True)
class DollyRow:
    line: int
    instruction: str
    context: str
    response: str
    category: str


@dataclass(slots=True)
class DollySource:
    """The rows of a Dolly-format file (``{"instruction", "context", "response", "category"}`` per line).

    Args:
        path: the file.
        sha256: of its bytes.
        rows: the usable rows.
        rejects: ``(line, reason)`` for every line that was not usable.
    """

    path: Path
    sha256: str
    rows: list[DollyRow]
    rejects: list[tuple[int, str]]

    @classmethod
    def load(cls, path: str | Path) -> "DollySource":
        path = Path(path)
        if not path.is_file():
            raise InstructError(f"Dolly file not found: {path} (set dolly.path=/path/to/dolly.jsonl, or mix=none to run without Dolly)")
        data = path.read_bytes()
        rows, rejects = [], []
        for line, raw in enumerate(data.splitlines(), start=1):
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                rejects.append((line, f"invalid JSON: {exc}"))
                continue
            reason = _problem(record)
            if reason:
                rejects.append((line, reason))
                continue
            rows.append(DollyRow(line, record["instruction"], record.get("context") or "", record["response"],
                                 str(record.get("category", ""))))
        if not rows:
            raise InstructError(f"{path}: no usable Dolly rows (expected JSON lines with "
                                f"'instruction' and 'response' strings; {len(rejects)} lines rejected)")
        return cls(path, hashlib.sha256(data).hexdigest(), rows, rejects)

    def sample(self, count: int, rng: np.random.Generator) -> list[DollyRow]:
        """``count`` rows without replacement (all of them, shuffled, if fewer exist)."""
        count = min(count, len(self.rows))
        return [self.rows[i] for i in rng.choice(len(self.rows), size=count, replace=False)]


def _problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return f"expected an object, got {type(record).__name__}"
    for key in ("instruction", "response"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            return f"'{key}' must be a non-empty string"
    if not isinstance(record.get("context", ""), (str, type(None))):
        return "'context' must be a string"
    return None


def dolly_row(row: DollyRow, *, cluster: str, split: str) -> Row:
    return Row(
        task="dolly",
        instruction=row.instruction,
        context=row.context,
        response=row.response,
        meta=row_meta(task="dolly", variant=row.category or None, cluster=cluster, split=split, source="dolly",
                      line=row.line),
    )
