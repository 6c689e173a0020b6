"""Answers on disk, keyed by the sha256 of the request body (model, messages, parameters).

One small JSON file per answer (``<dir>/<key[:2]>/<key>.json``), written through a temporary name and
renamed, so concurrent runs (a sweep) can share the folder and a reader never sees half a file. Only what
the model said is stored: never a header, never the API key.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from instruct.errors import InstructError
from instruct.usercache import read_shared, write_shared


class ResponseCache:
    """Args:
        folder: where the answers live (created on the first write).
    """

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        data = read_shared(self.path(key))  # None when missing or damaged: a miss, asked again and rewritten
        return data if isinstance(data, dict) else None

    def put(self, key: str, entry: dict) -> None:
        try:
            write_shared(self.path(key), orjson.dumps(entry))
        except OSError as exc:
            raise InstructError(f"cannot write the response cache {self.folder}: {exc.strerror or exc} "
                                f"(set responder.cache_dir=…)") from None
