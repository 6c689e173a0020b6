"""Dolly-format instruction files: read and validate once, sample without replacement per output file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import orjson

from instruct.errors import InstructError
from instruct.formats import RecordEncoder
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


def dolly_meta(row: DollyRow, *, cluster: str, split: str) -> dict:
    return row_meta(task="dolly", variant=row.category or None, cluster=cluster, split=split, source="dolly",
                    line=row.line)


def dolly_row(row: DollyRow, *, cluster: str, split: str) -> Row:
    return Row(task="dolly", instruction=row.instruction, context=row.context, response=row.response,
               meta=dolly_meta(row, cluster=cluster, split=split))


# A meta object no row has, and whose JSON cannot occur inside a JSON string (its quotes would be escaped there):
# where it appears in an encoded line is where a row's meta goes.
_META_SLOT = {"\x00meta slot\x00": 0}
_META_SLOT_JSON = orjson.dumps(_META_SLOT)


class DollyLines:
    """Dolly rows as the encoder writes them, each row's line encoded once per run however many output files
    pick it: of a Dolly row only the meta (cluster, split) differs between files, so the line is kept split
    around its meta (or whole, where the meta goes to a sidecar) and only the meta is serialised per file.
    The bytes are the encoder's own, for any format.

    Args:
        encoder: the run's output format.
    """

    def __init__(self, encoder: RecordEncoder):
        self.encoder = encoder
        self._parts: dict[int, list[bytes] | None] = {}  # row.line -> the line around its meta; None: as a Row

    def encode(self, row: DollyRow, *, cluster: str, split: str) -> tuple[bytes, bytes | None]:
        """What ``encoder.encode(dolly_row(row, cluster=cluster, split=split))`` gives."""
        if row.line not in self._parts:
            self._parts[row.line] = self._split(row)
        parts = self._parts[row.line]
        if parts is None:
            return self.encoder.encode(dolly_row(row, cluster=cluster, split=split))
        meta = orjson.dumps(dolly_meta(row, cluster=cluster, split=split))
        return (parts[0], meta + b"\n") if len(parts) == 1 else (meta.join(parts), None)

    def _split(self, row: DollyRow) -> list[bytes] | None:
        """The line with the meta slot cut out: two parts where the meta is inside the line, the whole line
        where the format puts it in a sidecar; None if the encoder writes the meta some other way."""
        line, meta = self.encoder.encode(replace(dolly_row(row, cluster="", split=""), meta=_META_SLOT))
        # Exact-size copies: a line from orjson keeps a buffer of at least 4 KB however short it is.
        parts = [bytes(memoryview(part)) for part in line.split(_META_SLOT_JSON)]
        if meta is None and len(parts) == 2:
            return parts
        if meta == _META_SLOT_JSON + b"\n" and len(parts) == 1:
            return parts
        return None
