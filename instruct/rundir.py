"""The versioned run directory and the atomic file writes that keep it honest.

A run directory is ``<parent>/<date_time>_<version id>``. The version id is a hash of the config (minus keys
that only change how the run executes) and of the inputs' sha256, so the same config on the same inputs
gets the same id; the directory itself is created with an exclusive mkdir, so two runs started in the same
second never share one. Data files appear complete or not at all (written to a temporary name, then
renamed), and ``manifest.json`` is written last with ``"complete": true``.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import orjson

from instruct.errors import InstructError

MANIFEST = "manifest.json"
STATE = ".state"
PARTS = ".parts"


def version_id(content: dict) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]


def create_run_dir(parent: Path, version: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstructError(f"cannot create output folder {parent}: {exc.strerror or exc} (set output_root=…)") from None
    for attempt in range(1, 1000):
        name = f"{stamp}_{version}" if attempt == 1 else f"{stamp}-{attempt}_{version}"
        try:
            (parent / name).mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise InstructError(f"cannot create run folder in {parent}: {exc.strerror or exc}") from None
        return parent / name
    raise InstructError(f"{parent}: could not find a free run folder name for {stamp}_{version}")


def is_complete(run_dir: Path) -> bool:
    try:
        return bool(orjson.loads((run_dir / MANIFEST).read_bytes()).get("complete"))
    except (OSError, orjson.JSONDecodeError):
        return False


@contextmanager
def atomic_open(path: Path) -> Iterator:
    """Write to ``path`` through a temporary file that is fsynced and renamed into place only on success."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InstructError(f"cannot write {path}: {exc.strerror or exc} (disk full or not writable?)") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: object) -> None:
    with atomic_open(path) as handle:
        handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
