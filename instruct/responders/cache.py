"""Answers on disk, keyed by the sha256 of the request body (model, messages, parameters).

One small JSON file per answer (``<dir>/<key[:2]>/<key>.json``), written through a temporary name and
renamed, so concurrent runs (a sweep) can share the folder and a reader never sees half a file. Only what
the model said is stored: never a header, never the API key.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from instruct.errors import InstructError


class ResponseCache:
    """Args:
        folder: where the answers live (created on the first write).
    """

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            data = orjson.loads(self.path(key).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None  # missing, or damaged: a miss, so the answer is asked again and rewritten
        return data if isinstance(data, dict) else None

    def put(self, key: str, entry: dict) -> None:
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(orjson.dumps(entry))
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InstructError(f"cannot write the response cache {self.folder}: {exc.strerror or exc} "
                                f"(set responder.cache_dir=…)") from None
