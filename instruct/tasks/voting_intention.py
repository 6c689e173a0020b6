"""Voting intention: the prompt shows a user's posts, the response states their label in a sentence.

Only where a label exists. The label comes from ONE configured source:
- ``labels.field``: a top-level key of the (object-shaped) record, e.g. ``{"thread": […], "vote": "Green"}``;
- ``labels.file``: a JSONL or CSV file whose rows map ``labels.key`` (``thread_id``, ``user_id`` or
  ``cluster_id``) to ``label``, e.g. ``{"thread_id": "task-0-249", "label": "Green"}`` or the CSV header
  ``cluster_id,label``.
With neither, the task is not applicable: it declines every thread with "not applicable: no labels", says so
in the manifest (``tasks.<name>.status``) and logs one warning. It never guesses a label.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path
from typing import Mapping

import orjson

from instruct.errors import InstructError
from instruct.records import Row, Thread
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext
from instruct.templates import Slots

log = logging.getLogger("instruct")

NO_LABELS = "not applicable: no labels"
LABEL_KEYS = ("thread_id", "user_id", "cluster_id")
_CLUSTER_PREFIX = "cluster_"


def _cluster_id(value: object) -> str:
    """``3``, ``"3"`` and ``"cluster_3"`` all name cluster 3."""
    text = str(value).strip()
    return text[len(_CLUSTER_PREFIX):] if text.startswith(_CLUSTER_PREFIX) else text


def load_label_file(path: Path, key: str) -> dict[str, str]:
    """Read ``key`` → ``label`` from a JSONL (``.jsonl``/``.json``) or CSV (``.csv``) file.

    Rows without the key or with an empty label are skipped; a key given two different labels is an error,
    because either choice would be a guess.

    Args:
        path: the label file.
        key: the column/JSON key the rows are keyed by (one of LABEL_KEYS).
    """
    hint = f"set labels.key to the file's key column ({', '.join(LABEL_KEYS)}); every row needs it and 'label'"
    if not path.is_file():
        raise InstructError(f"label file {path} does not exist (set labels.file to a JSONL or CSV file with "
                            f"columns '{key}' and 'label', or labels.file=null)")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = _jsonl_rows(path)
    elif suffix == ".csv":
        rows = _csv_rows(path)
    else:
        raise InstructError(f"label file {path}: unknown type {suffix!r}; use .jsonl or .csv")
    labels: dict[str, str] = {}
    for line, row in rows:
        value, label = row.get(key), row.get("label")
        if value is None or str(value).strip() == "" or not isinstance(label, str) or not label.strip():
            continue
        value = _cluster_id(value) if key == "cluster_id" else str(value).strip()
        label = label.strip()
        if labels.setdefault(value, label) != label:
            raise InstructError(f"label file {path} line {line}: {key} {value!r} has two labels, "
                                f"{labels[value]!r} and {label!r}")
    if not labels:
        raise InstructError(f"label file {path} has no usable rows keyed by '{key}': {hint}")
    return labels


def _jsonl_rows(path: Path):
    with open(path, "rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InstructError(f"label file {path} line {line}: invalid JSON ({exc})") from None
            if isinstance(row, dict):
                yield line, row


def _csv_rows(path: Path):
    with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheet exports start with a BOM
        for line, row in enumerate(csv.DictReader(handle), start=2):
            yield line, row


class VotingIntentionTask(Task):
    """The user is the author of the thread's last message: in BluePrint that is the cluster's persona, the
    one whose action the thread records (earlier messages may be other people's posts). The prompt shows
    that user's text messages in the thread, one per line (user ids are pseudonyms that change in every
    thread, so the history is this thread's); the response states the label using a response template.

    Args:
        weight: relative chance of being drawn.
        labels: the label source, ``{field, file, key}``; set ``field`` or ``file`` (not both). ``key``
            says what the file's rows are keyed by: ``thread_id`` (the record's id), ``user_id`` (the last
            message's user) or ``cluster_id`` (the record's ``cluster_id``, else the file's ``cluster_<id>``).
        max_posts: the history shows at most this many of the user's latest posts.
    """

    template_file = "voting_intention"
    slots = {"prompt": Slots.of("history"), "response": Slots.of("label")}

    bounds = {"max_posts": (1, None)}

    def __init__(self, weight: float = 1.0, labels: Mapping | None = None, max_posts: int = 20):
        super().__init__(weight)
        labels = dict(labels or {})
        unknown = sorted(set(labels) - {"field", "file", "key"})
        if unknown:
            raise ValueError(f"voting_intention.labels: unknown key(s) {unknown}; use field, file, key")
        self.labels = {"field": labels.get("field"), "file": labels.get("file"),
                       "key": labels.get("key") or "thread_id"}
        if self.labels["key"] not in LABEL_KEYS:
            raise ValueError(f"voting_intention.labels.key={self.labels['key']!r}; choose one of {list(LABEL_KEYS)}")
        if self.labels["field"] and self.labels["file"]:
            raise ValueError("voting_intention: set labels.field or labels.file, not both")
        if max_posts < 1:
            raise ValueError("voting_intention needs max_posts >= 1")
        self.max_posts = max_posts
        self._by_key: dict[str, str] = {}
        self._file_sha256 = None
        if self.labels["file"]:
            path = Path(self.labels["file"]).expanduser()
            self._by_key = load_label_file(path, self.labels["key"])
            self._file_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()  # the labels are an input too

    @property
    def applicable(self) -> bool:
        return bool(self.labels["field"] or self.labels["file"])

    def describe(self) -> dict:
        if not self.applicable and self.llm_answers:
            status = "no label source: the LLM responder infers each user's voting intention"
        elif not self.applicable:
            status = f"{NO_LABELS} (set labels.field or labels.file); the task makes no rows"
        elif self.labels["field"]:
            status = f"labels from the record field '{self.labels['field']}'"
        else:
            status = f"{len(self._by_key)} labels by {self.labels['key']} from {self.labels['file']}"
        return {**super().describe(), "status": status, "labels_loaded": len(self._by_key),
                "label_file_sha256": self._file_sha256}

    def _label(self, thread: Thread) -> str | None:
        if self.labels["field"]:
            value = thread.fields.get(self.labels["field"])
            return (value.strip() or None) if isinstance(value, str) else None
        key = self.labels["key"]
        if key == "thread_id":
            return self._by_key.get(thread.id)
        if key == "user_id":
            return self._by_key.get(thread.messages[-1].user)
        cluster_id = thread.fields.get("cluster_id")
        return self._by_key.get(_cluster_id(thread.cluster if cluster_id is None else cluster_id))

    def _history(self, thread: Thread) -> list[str]:
        user = thread.messages[-1].user
        posts = [m.text for m in thread.messages if m.user == user and m.text and m.text.strip()]
        # One post per line: a post's own line breaks would make its lines look like separate posts.
        return [" ".join(text.split()) for text in posts[-self.max_posts:]]

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        if not self.applicable and not self.llm_answers:
            return NO_LABELS
        if self.applicable and self._label(thread) is None:
            field = self.labels["field"]
            return f"no '{field}' label in the record" if field else f"no label for its {self.labels['key']}"
        if not self._history(thread):
            return "user has no text messages"
        return None

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        instruction, prompt_id = self.render("prompt", draws, history="\n".join(self._history(thread)))
        if self.llm_answers:  # the responder writes the answer; no label is stated or needed
            return self.row(thread, context, instruction=instruction, response="", template_id=prompt_id)
        response, response_id = self.render("response", draws, label=self._label(thread))
        # Both templates shape the row, so both ids are its lineage (row meta has one template_id key).
        return self.row(thread, context, instruction=instruction, response=response,
                        template_id=f"{prompt_id}+{response_id}")
