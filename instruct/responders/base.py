"""The one interface every responder implements: answer a list of chat requests.

A responder is asked once per cluster, in the parent process, for the rows of the tasks it covers. It
answers each distinct request with what the model said (an ``Answer``), a reason it could not get an answer
(a string), or ``None`` when the answer will come later (a Batch job). Judging an answer (empty, refusal,
truncated) is shared, so every responder rejects the same answers for the same reasons.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import orjson
from omegaconf import DictConfig, OmegaConf

from instruct.records import Row
from instruct.responders.cache import ResponseCache

# Usage fields summed into the manifest's token counts.
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True, slots=True)
class Request:
    """One Chat Completions request.

    Args:
        key: sha256 of the request body (model, messages, parameters): the cache key and the Batch custom_id.
        body: the request body, as sent to ``/chat/completions``.
    """

    key: str
    body: dict


@dataclass(frozen=True, slots=True)
class Answer:
    """What the model said.

    Args:
        text: the message content (None when the model gave none).
        finish_reason: ``stop``, ``length``, ``content_filter`` …
        refusal: the message's ``refusal`` field, set by servers that report refusals separately.
        usage: token counts of the request (``prompt_tokens``, ``completion_tokens``, ``total_tokens``).
    """

    text: str | None
    finish_reason: str | None = None
    refusal: str | None = None
    usage: dict = field(default_factory=dict)

    @classmethod
    def from_completion(cls, body: object) -> "Answer":
        """Read a Chat Completions response body; raises ValueError when it has no message."""
        try:
            choice = body["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise ValueError("malformed response: no choices[0].message") from None
        usage = body.get("usage") or {}
        content = message.get("content")
        return cls(text=content if isinstance(content, str) else None, finish_reason=choice.get("finish_reason"),
                   refusal=message.get("refusal"),
                   usage={k: int(usage[k]) for k in TOKEN_FIELDS if isinstance(usage.get(k), int)})

    def to_dict(self) -> dict:
        return {"text": self.text, "finish_reason": self.finish_reason, "refusal": self.refusal,
                "usage": self.usage}


def prompt_of(row: Row) -> str:
    """What the model is asked: the row's prompt exactly as the output formats show it to the user turn, or,
    when the model writes the instruction (``row.backtranslation``), the question about the real response."""
    if row.backtranslation:
        return row.backtranslation["question"]
    return f"{row.instruction}\n\n{row.context}" if row.context else row.instruction


def endpoint_host(base_url: str) -> str:
    """``https://user:secret@api.example.com:8443/v1`` → ``api.example.com:8443`` (no credentials, no path)."""
    parts = urlsplit(base_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


class Responder(ABC):
    """Base class of the responders.

    Args:
        cfg: the ``responder`` config node (see ``ResponderConfig`` in instruct/schema.py).
    """

    name: ClassVar[str]
    endpoint: str | None = None   # host[:port] the responder talks to, for the manifest

    def __init__(self, cfg: DictConfig):
        self.tasks = frozenset(str(task) for task in cfg.tasks)
        self.model = str(cfg.model)
        self.system_prompt = cfg.system_prompt
        self.params = {"temperature": float(cfg.temperature), "max_tokens": int(cfg.max_tokens),
                       **OmegaConf.to_container(cfg.extra_body, resolve=True)}
        self.refusals = [re.compile(pattern, re.IGNORECASE) for pattern in cfg.refusal_patterns]
        self.cache = ResponseCache(Path(cfg.cache_dir))
        self.stats: Counter = Counter()  # request-level counts of the current cluster

    def start(self) -> None:
        """Check, before the run folder exists, that the responder can work (fail fast)."""

    @abstractmethod
    def answer(self, requests: list[Request]) -> dict[str, Answer | str | None]:
        """Answer each distinct request: key → Answer, a failure reason, or None (answer comes later)."""

    def finish(self, run_dir: Path, clusters: list[str]) -> dict:
        """Called once after every cluster is written; returns extra manifest fields (the batch responder
        writes its request file here)."""
        return {}

    def request(self, row: Row) -> Request:
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else [])
        messages.append({"role": "user", "content": prompt_of(row)})
        body = {"model": self.model, "messages": messages, **self.params}
        return Request(hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest(), body)

    def judge(self, answer: Answer) -> tuple[str | None, str | None]:
        """``(response, None)`` for a usable answer, else ``(None, reason)``; an unusable answer is never
        replaced by anything."""
        if answer.refusal or answer.finish_reason == "content_filter":
            return None, "refusal"
        text = (answer.text or "").strip()
        if not text:
            return None, "empty response"
        if answer.finish_reason == "length":
            return None, "truncated at responder.max_tokens"
        if any(pattern.match(text) for pattern in self.refusals):
            return None, "refusal"
        return text, None

    def cached(self, key: str) -> Answer | None:
        entry = self.cache.get(key)
        if entry is None or "text" not in entry:
            return None
        self.stats["cache_hits"] += 1
        return Answer(text=entry["text"], finish_reason=entry.get("finish_reason"), refusal=entry.get("refusal"),
                      usage=entry.get("usage") or {})

    def remember(self, key: str, answer: Answer) -> None:
        self.cache.put(key, {"model": self.model, **answer.to_dict()})

    def take_stats(self) -> Counter:
        """The counts since the last call (one cluster's), then start again from zero."""
        stats, self.stats = self.stats, Counter()
        return stats

    def count_tokens(self, answer: Answer) -> None:
        for name in TOKEN_FIELDS:
            self.stats[name] += answer.usage.get(name, 0)
