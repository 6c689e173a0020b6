"""Output record formats. Each turns a Row into the line a trainer reads unchanged.

- ``messages``: chat format read by TRL, Axolotl (``chat_template``), LLaMA-Factory and HF ``datasets``.
- ``alpaca``: ``instruction``/``input``/``output`` (Axolotl ``alpaca``, LLaMA-Factory's default).
- ``sharegpt``: ``conversations`` of ``from``/``value`` turns (Axolotl, LLaMA-Factory ``sharegpt``).
- ``blueprint``: the bare list of ``system``/``context``/``assistant`` turns, as BluePrint's ``finetuning.py``
  reads it (``json.loads`` per line). The assistant turn holds BluePrint's reply object as JSON: ``{"text": …}``,
  or a response that already is one (next_action's ``{"actions": {<key>: true/false …}, "text": …}``, the same
  bytes every format carries) as it is. A line has no
  room for lineage, so it has a sidecar outside the data folders, where no data glob finds it:
  ``meta/<split>/<cluster>.jsonl``, one meta object per line, line for line. HF ``datasets``' JSON reader
  cannot read bare lists; ``Dataset.from_dict({"chains": rows})`` does, as finetuning.py does.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from instruct.records import Row


def _prompt(row: Row) -> str:
    return f"{row.instruction}\n\n{row.context}" if row.context else row.instruction


def messages(row: Row) -> dict:
    return {
        "messages": [{"role": "user", "content": _prompt(row)}, {"role": "assistant", "content": row.response}],
        "task": row.task,
        "meta": row.meta,
    }


def alpaca(row: Row) -> dict:
    return {"instruction": row.instruction, "input": row.context, "output": row.response, "task": row.task,
            "meta": row.meta}


def sharegpt(row: Row) -> dict:
    return {
        "conversations": [{"from": "human", "value": _prompt(row)}, {"from": "gpt", "value": row.response}],
        "task": row.task,
        "meta": row.meta,
    }


def blueprint(row: Row) -> list:
    content = row.response if row.reply_json else orjson.dumps({"text": row.response}).decode()
    answer = {"role": "assistant", "content": content}
    if row.context:
        return [{"role": "system", "content": row.instruction}, {"role": "context", "content": row.context}, answer]
    return [{"role": "system", "content": row.instruction}, answer]


FORMATS = {"messages": messages, "alpaca": alpaca, "sharegpt": sharegpt, "blueprint": blueprint}
# Formats whose records cannot carry `meta`; their lineage goes to a parallel file under SIDECAR_DIR.
SIDECAR_FORMATS = frozenset({"blueprint"})
SIDECAR_DIR = "meta"


def sidecar_path(data_file: Path) -> Path:
    """The lineage file of ``<run>/<split>/<cluster>.jsonl``: ``<run>/meta/<split>/<cluster>.jsonl``."""
    return data_file.parent.parent / SIDECAR_DIR / data_file.parent.name / data_file.name


class RecordEncoder:
    """Encodes rows of one format to JSON lines (bytes), plus the sidecar meta line where the format needs one.

    Args:
        name: one of FORMATS.
    """

    def __init__(self, name: str):
        if name not in FORMATS:
            raise ValueError(f"unknown output format {name!r}; choose one of {sorted(FORMATS)}")
        self.name = name
        self._to_record = FORMATS[name]
        self.sidecar = name in SIDECAR_FORMATS

    def encode(self, row: Row) -> tuple[bytes, bytes | None]:
        # orjson ends the line itself: a `+ b"\n"` would copy the whole line again.
        line = orjson.dumps(self._to_record(row), option=orjson.OPT_APPEND_NEWLINE)
        meta = orjson.dumps(row.meta, option=orjson.OPT_APPEND_NEWLINE) if self.sidecar else None
        return line, meta
