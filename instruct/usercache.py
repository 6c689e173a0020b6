"""Tables a library derives the same way every time, kept between runs in the user's cache folder
(``$XDG_CACHE_HOME/instruct``, else ``~/.cache/instruct``): datasketch's LSH parameters (whose lsh module imports
scipy), wordfreq's Zipf table (whose import brings langcodes, ftfy and regex) and lemminflect's parts of speech
of those words (which it answers only after loading its whole lexicon). A run reads the kept JSON instead of
importing and asking the library again.

Every file is named by the library's version and the settings it was asked with, so a new version is asked
anew. A missing, cut or foreign file reads as nothing and is written again; a folder that cannot be written
only costs the next run the same work. ``write_shared`` and ``read_shared`` are how any cache folder shared by
concurrent runs is written and read (the LLM response cache too).
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from pathlib import Path
from typing import Callable

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
    return read_shared(path) if path is not None else None


def remember(path: Path | None, value: object) -> None:
    """Keep ``value`` (JSON-serialisable) at ``path``, whole or not at all for a run reading it meanwhile."""
    if path is None:
        return
    try:
        write_shared(path, orjson.dumps(value))
    except OSError:
        pass  # a folder that cannot be written costs the next run the same work, nothing more


def kept_table(package: str, name: str, build: Callable[[], dict]) -> dict:
    """The table ``build`` derives from ``package`` (imported only inside it), read from the user's cache
    folder when kept there, else built and kept for later runs."""
    path = cache_file(package, name)
    table = recall(path)
    if not isinstance(table, dict) or not table:
        table = build()
        remember(path, table)
    return table


def write_shared(path: Path, data: bytes) -> None:
    """Write a file that concurrent runs share (a sweep's jobs may write the same one at once): through a
    temporary name of this process and thread, then renamed, so a reader sees the whole file or none. Raises
    OSError, the temporary file removed; the caller says what a failed write costs."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def read_shared(path: Path) -> object | None:
    """The JSON of a file ``write_shared`` wrote, or None when it is missing or damaged (made again then)."""
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
