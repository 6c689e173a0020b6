"""Token budgets: count a row's tokens with a local Hugging Face tokenizer (or a documented estimate), drop a
row whose prompt plus response exceeds ``budget.max_tokens`` (never cut it), and keep each task's length
histogram so its statistics are exact for any sharding.

Without ``budget.tokenizer`` a text's tokens are estimated as ``ceil(characters / budget.chars_per_token)``
(4.0 by default: the usual figure for English with GPT-style BPE vocabularies; emoji-heavy posts have more
tokens per character). The manifest says which counter was used.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from instruct.errors import InstructError
from instruct.records import Row


class TokenCounter:
    """Counts tokens of a text.

    Args:
        tokenizer: a ``tokenizer.json`` file or a folder holding one; None: the characters-per-token estimate.
        chars_per_token: the estimate's ratio.
    """

    def __init__(self, tokenizer: str | None, chars_per_token: float):
        self.chars_per_token = chars_per_token
        self.path = None
        self._encode = None
        self._last: tuple[str | None, int] = (None, 0)
        if tokenizer is not None:
            path = Path(tokenizer)
            if path.is_dir():
                path = path / "tokenizer.json"
            if not path.is_file():
                raise InstructError(f"budget.tokenizer: no tokenizer file at {path} (give a tokenizer.json or a "
                                    f"folder holding one; nothing is downloaded)")
            from tokenizers import Tokenizer

            try:
                loaded = Tokenizer.from_file(str(path))
            except Exception as exc:  # tokenizers raises its own Exception type for a bad file
                raise InstructError(f"budget.tokenizer: cannot load {path}: {exc}") from None
            self.path = path
            self._encode = loaded.encode

    @property
    def method(self) -> str:
        return f"tokenizer: {self.path}" if self.path else f"estimate: {self.chars_per_token} characters per token"

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self._encode is None:
            return math.ceil(len(text) / self.chars_per_token)
        if text is self._last[0]:  # the needle counted its prompt just before the budget counts the row
            return self._last[1]
        count = len(self._encode(text, add_special_tokens=False).ids)
        self._last = (text, count)
        return count

    def row_tokens(self, row: Row) -> int:
        """Tokens of the prompt (instruction and context) plus the response."""
        return self(row.instruction) + self(row.context) + self(row.response)


class Budget:
    """What the worker asks about every built row.

    Args:
        counter: the token counter.
        max_tokens: rows over it are dropped (None: no limit, lengths are only counted).
    """

    def __init__(self, counter: TokenCounter, max_tokens: int | None):
        self.counter = counter
        self.max_tokens = max_tokens

    def admit(self, row: Row, lengths: Counter, deferred: bool = False) -> Row | str:
        """The row, its length counted in ``lengths``; or why it is dropped. A row whose response an LLM will
        write is measured on its prompt."""
        tokens = self.counter(row.instruction) + self.counter(row.context)
        if not deferred:
            tokens += self.counter(row.response)
        if self.max_tokens is not None and tokens > self.max_tokens:
            return f"over budget.max_tokens={self.max_tokens}"
        lengths[tokens] += 1
        return row


def length_stats(histogram: dict) -> dict:
    """mean, p50, p95 and max (nearest rank) of a histogram {tokens: rows}; exact, whatever order it was summed."""
    items = sorted((int(k), v) for k, v in histogram.items())
    rows = sum(v for _, v in items)
    if not rows:
        return {"rows": 0, "mean": None, "p50": None, "p95": None, "max": None}
    total = sum(k * v for k, v in items)

    def rank(q: float) -> int:
        target, seen = max(1, math.ceil(q * rows)), 0
        for tokens, count in items:
            seen += count
            if seen >= target:
                return tokens
        return items[-1][0]

    return {"rows": rows, "mean": round(total / rows, 2), "p50": rank(0.5), "p95": rank(0.95), "max": items[-1][0]}
