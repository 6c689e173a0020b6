"""Tables a library derives the same way every time, kept between runs in the user's cache folder
(``$XDG_CACHE_HOME/instruct``, else ``~/.cache/instruct``): datasketch's LSH parameters (whose lsh module imports
scipy) and wordfreq's Zipf table (whose import brings langcodes, ftfy and regex). A run reads the kept JSON
instead of importing and asking the library again.

Every file is named by the library's version and the settings it was asked with, so a new version is asked
anew. A missing, cut or foreign file reads as nothing and is written again; a folder that cannot be written
only costs the next run the same work.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import orjson


def cache_file(package: str, name: str) -> Path | None:
    """The file for what ``package`` (installed) answered, ``name`` naming the question; None without it."""
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None  # the caller asks the library, which then says what is missing
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "instruct"
    return root / f"{package}-{version}-{name}.json"


def recall(path: Path | None) -> object | None:
    """What is kept at ``path`` (parsed JSON), or None when there is nothing readable."""
    if path is None:
        return None
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def remember(path: Path | None, value: object) -> None:
    """Keep ``value`` (JSON-serialisable) at ``path``, atomically: a run reading it sees all of it or nothing."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_bytes(orjson.dumps(value))
        partial.replace(path)
    except OSError:
        pass
