"""Cluster files on disk: find them, scan them once, read any set of their lines without loading the file.

The scan is one pass over the bytes: sha256, line count, and the byte offset of every CHUNK_LINES-th line.
Those offsets let a shard seek straight to its first line, and let a sample read only the lines it keeps.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from instruct.errors import InstructError

# Lines per chunk: the unit of randomness and of sharding. Fixed, so the output never depends on how a
# cluster is cut into shards or spread over workers.
CHUNK_LINES = 1024
_BLOCK = 1 << 20
_GZIP_ERRORS = (EOFError, zlib.error, OSError)


def cluster_key(path: Path) -> str:
    """``cluster_12.jsonl.gz`` → ``cluster_12``: the name used for output files, seeds and lineage."""
    name = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name


def natural_key(path: Path) -> list:
    """Sort key that puts ``cluster_2`` before ``cluster_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def discover(folder: str | Path, pattern: str) -> list[Path]:
    """The cluster files of a folder in natural order, whatever order the file system lists them in."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InstructError(f"input folder not found: {folder} (set source.path=/path/to/cluster/files)")
    # The name breaks ties (cluster_1 and cluster_01 sort alike), so no order is left to the file system.
    files = sorted((p for p in folder.glob(pattern) if p.is_file()), key=lambda p: (natural_key(p), p.name))
    if not files:
        raise InstructError(
            f"no files matching {pattern!r} in {folder} (set source.path=… or source.pattern=…, "
            f"e.g. source.pattern='cluster_*.jsonl.gz')"
        )
    keys = [cluster_key(p) for p in files]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise InstructError(f"{folder}: more than one file for cluster(s) {duplicates} (e.g. .jsonl and .jsonl.gz)")
    return files


def _decompressed_blocks(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of a .gz file (all members), block by block. Unlike GzipFile.read, every byte
    that can be decompressed is yielded before a truncated stream raises EOFError."""
    with open(path, "rb") as raw:
        decompressor = zlib.decompressobj(wbits=31)
        for block in iter(lambda: raw.read(_BLOCK), b""):
            while block:
                yield decompressor.decompress(block)
                if not decompressor.eof:
                    break
                block = decompressor.unused_data  # another gzip member follows
                decompressor = zlib.decompressobj(wbits=31)
                if not block:
                    return
        if not decompressor.eof:
            yield decompressor.flush()
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _blocks(path: Path) -> Iterator[bytes]:
    if path.name.endswith(".gz"):
        yield from _decompressed_blocks(path)
        return
    with open(path, "rb") as stream:
        yield from iter(lambda: stream.read(_BLOCK), b"")


def _gz_lines(path: Path) -> Iterator[bytes]:
    pending = b""
    for block in _decompressed_blocks(path):
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


@dataclass(slots=True)
class ClusterFile:
    """What one scan learned about a cluster file.

    Args:
        path: the file.
        key: its cluster key (``cluster_3``).
        sha256: of the bytes on disk (compressed bytes for .gz).
        size: bytes on disk.
        lines: number of lines, a last line without a newline included.
        offsets: offsets[k] is where line k*CHUNK_LINES starts (in the decompressed stream for .gz).
        truncated: for a .gz that ends early, what the decompressor said; the lines before it are used.
    """

    path: Path
    key: str
    sha256: str
    size: int
    lines: int
    offsets: list[int] = field(default_factory=list)
    truncated: str | None = None

    @property
    def compressed(self) -> bool:
        return self.path.name.endswith(".gz")


def scan(path: Path) -> ClusterFile:
    """One pass over a file: sha256, line count and chunk offsets."""
    compressed = path.name.endswith(".gz")
    digest = hashlib.sha256()
    try:
        size = path.stat().st_size
        if compressed:  # the hash is of the bytes on disk; plain files are hashed during the pass below
            with open(path, "rb") as raw:
                for block in iter(lambda: raw.read(_BLOCK), b""):
                    digest.update(block)
    except OSError as exc:
        raise InstructError(f"cannot read {path}: {exc.strerror or exc}") from None

    offsets = [0]
    newlines = 0
    position = 0
    last_byte = b"\n"
    truncated = None
    try:
        for block in _blocks(path):
            if not block:
                continue
            if not compressed:
                digest.update(block)
            count = block.count(b"\n")
            next_boundary = len(offsets) * CHUNK_LINES
            if newlines + count >= next_boundary:
                start = 0
                seen = newlines
                while True:
                    index = block.find(b"\n", start)
                    if index < 0:
                        break
                    seen += 1
                    start = index + 1
                    if seen == next_boundary:
                        offsets.append(position + start)
                        next_boundary += CHUNK_LINES
            newlines += count
            position += len(block)
            last_byte = block[-1:]
    except _GZIP_ERRORS as exc:
        if not compressed:
            raise InstructError(f"cannot read {path}: {exc}") from None
        truncated = f"truncated or corrupt gzip stream: {exc}"
    # A cut .gz counts one line more than it can give: the line the cut went through (or, cut right after a
    # newline, the unreadable rest), so the truncation is a rejected line in rejects.jsonl and counts toward
    # source.max_reject_fraction instead of passing as a shorter file (or, for a file that is no gzip at all,
    # as an empty one).
    lines = newlines + (1 if last_byte != b"\n" or truncated else 0)
    # An offset at the very end of the file starts no line.
    while len(offsets) > 1 and offsets[-1] >= position:
        offsets.pop()
    return ClusterFile(path, cluster_key(path), digest.hexdigest(), size, lines, offsets, truncated)


def read_lines(cluster: ClusterFile, line_numbers: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_bytes)`` for ascending 0-based line numbers, seeking by chunk offsets so
    lines that are not asked for are skipped without being parsed (and, far apart, without being read)."""
    if cluster.compressed:  # one shard per .gz file: a forward pass, no seeks
        wanted_lines = iter(line_numbers)
        wanted = next(wanted_lines, None)
        try:
            for number, raw in enumerate(_gz_lines(cluster.path)):
                if wanted is None or number >= cluster.lines:
                    return
                if number == wanted:
                    yield number, raw
                    wanted = next(wanted_lines, None)
        except _GZIP_ERRORS:
            return  # lines the scan counted but cannot be read again are rejected by the worker
        return
    with open(cluster.path, "rb") as stream:
        readline, lines = stream.readline, cluster.lines
        current = 0  # the line the stream is positioned at
        try:
            for wanted in line_numbers:
                if wanted >= lines:
                    return
                if wanted != current:  # skipped for the common case, the very next line
                    chunk = wanted // CHUNK_LINES
                    if (wanted - current > CHUNK_LINES // 4 and chunk < len(cluster.offsets)
                            and chunk * CHUNK_LINES > current):
                        stream.seek(cluster.offsets[chunk])
                        current = chunk * CHUNK_LINES
                    while current < wanted:
                        readline()
                        current += 1
                current += 1
                yield wanted, readline()
        except _GZIP_ERRORS:
            return  # the scan recorded the truncation as a reject
