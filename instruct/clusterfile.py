"""Cluster files on disk: find them, scan them once, read any set of their lines without loading the file.

The scan is one pass over the bytes: sha256, line count, and the byte offset of every CHUNK_LINES-th line.
Those offsets let a shard seek straight to its first line, and let a sample read only the lines it keeps.
"""

from __future__ import annotations

import glob

import hashlib
import re
import zlib
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from instruct.errors import InstructError

# Lines per chunk: the unit of randomness and of sharding. Fixed, so the output never depends on how a
# cluster is cut into shards or spread over workers.
CHUNK_LINES = 1024
_BLOCK = 1 << 20
# A chunk of at most _MAX_CHUNK_READ bytes (lines of ~16 kB on average) is read whole; a larger one line by
# line, so memory stays bounded by the lines kept. A chunk read whole is split into all its lines when at least
# _DENSE of them are asked for; with fewer (a sample of a file much larger than it, as every real BluePrint
# file is for preset=paper), numpy finds the newlines and only the asked-for lines become bytes objects. The two
# cost about the same at half a chunk (measured on the benchmark corpus); below it indexing is cheaper.
_DENSE = CHUNK_LINES // 2
_MAX_CHUNK_READ = 16 << 20
_NEWLINE = ord("\n")
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
    if folder.is_file():
        raise InstructError(f"source.path={folder} is a file, not a folder: set source.path={folder.parent} (and "
                            f"source.pattern={glob.escape(folder.name)!r} for this file alone)")
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
    """The lines of a .gz file without their line endings, up to the first unreadable byte: a line cut by
    a truncation is not given (the scan counted it, and the worker rejects it as unreadable)."""
    pending = b""
    try:
        for block in _decompressed_blocks(path):
            lines = (pending + block).split(b"\n")
            pending = lines.pop()
            yield from lines
    except _GZIP_ERRORS:
        return
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
            # numpy, not bytes.count and find: CPython counts a byte one at a time, numpy compares in SIMD.
            is_newline = np.frombuffer(block, dtype=np.uint8) == _NEWLINE
            count = int(np.count_nonzero(is_newline))
            first = len(offsets) * CHUNK_LINES - newlines  # the block's newline (1-based) that ends a chunk
            if first <= count:
                ends = np.flatnonzero(is_newline)
                offsets.extend((position + ends[first - 1::CHUNK_LINES] + 1).tolist())
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


def read_lines(cluster: ClusterFile, line_numbers: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_bytes)`` for ascending 0-based line numbers: ``read_chunks`` line by line."""
    for _, numbers, raws in read_chunks(cluster, line_numbers):
        yield from zip(numbers, raws)


def read_chunks(cluster: ClusterFile, line_numbers: Sequence[int]) -> Iterator[tuple[int, list[int], list[bytes]]]:
    """For ascending 0-based line numbers: ``(chunk index, its asked-for line numbers, their bytes)`` for each
    chunk that has any, lines without their line ending. Lines the file cannot give again (a truncated .gz)
    are not given. The line numbers must be strictly ascending.

    A chunk of a plain file is read with one ``read``, then split into its lines when many are asked for, or
    indexed by its newlines when few are (see _DENSE). Lines that are not asked for are never parsed, and
    chunks without any are never read (a plain file seeks past them)."""
    end = bisect_left(line_numbers, cluster.lines)
    if cluster.compressed:  # one shard per .gz file: a forward pass, no seeks
        lines, current = _gz_lines(cluster.path), 0  # current: the number of the next line ``lines`` gives
        for chunk, numbers in _by_chunk(line_numbers, end):
            if numbers[-1] - numbers[0] + 1 == len(numbers):  # a run of consecutive lines, e.g. a whole chunk
                next(islice(lines, numbers[0] - current, numbers[0] - current), None)  # skip to its first
                picked = list(islice(lines, len(numbers)))
            else:
                picked = _iterator_picked(lines, current, numbers)
            yield chunk, numbers[:len(picked)], picked
            if len(picked) < len(numbers):  # the stream ended early (a truncated .gz)
                return
            current = numbers[-1] + 1
        return
    with open(cluster.path, "rb") as stream:
        for chunk, numbers in _by_chunk(line_numbers, end):
            start = cluster.offsets[chunk]
            stop = cluster.offsets[chunk + 1] if chunk + 1 < len(cluster.offsets) else cluster.size
            stream.seek(start)
            if stop - start > _MAX_CHUNK_READ:
                yield chunk, numbers, _readline_picked(stream, chunk, numbers)
                continue
            block = stream.read(stop - start)
            picked = (_picked(chunk, numbers, block.split(b"\n")) if len(numbers) >= _DENSE
                      else _indexed_picked(chunk, numbers, block))
            yield picked
            if len(picked[1]) < len(numbers):  # the file is shorter than when it was scanned
                return


def _by_chunk(line_numbers: Sequence[int], end: int) -> Iterator[tuple[int, Sequence[int]]]:
    """The first ``end`` of the ascending line numbers, grouped by chunk: ``(chunk index, its numbers)``."""
    index = 0
    while index < end:
        chunk = line_numbers[index] // CHUNK_LINES
        stop = bisect_left(line_numbers, (chunk + 1) * CHUNK_LINES, index, end)
        yield chunk, line_numbers[index:stop]
        index = stop


def _picked(chunk: int, numbers: Sequence[int], chunk_lines: list[bytes]) -> tuple[int, Sequence[int], list[bytes]]:
    """The asked-for lines of a chunk, from its lines read so far (fewer than asked for when the file ended)."""
    base = chunk * CHUNK_LINES
    first, last = numbers[0] - base, numbers[-1] - base
    if last < len(chunk_lines):
        if last - first + 1 == len(numbers):  # a run of consecutive lines, e.g. a whole chunk: one slice
            return chunk, numbers, chunk_lines[first:last + 1]
        return chunk, numbers, [chunk_lines[n - base] for n in numbers]
    available = [n for n in numbers if n - base < len(chunk_lines)]
    return chunk, available, [chunk_lines[n - base] for n in available]


def _indexed_picked(chunk: int, numbers: Sequence[int], block: bytes) -> tuple[int, Sequence[int], list[bytes]]:
    """The asked-for lines of a chunk's bytes, as ``_picked`` gives them from its split lines, without making a
    bytes object of every line: the newlines are found in C, and only the asked-for lines are sliced out."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == _NEWLINE).tolist()
    ends.append(len(block))  # the end of a last line without a newline (or of nothing: split's last b"")
    base = chunk * CHUNK_LINES
    available = numbers if numbers[-1] - base < len(ends) else [n for n in numbers if n - base < len(ends)]
    lines = []
    for number in available:
        index = number - base
        lines.append(block[ends[index - 1] + 1 if index else 0: ends[index]])
    return chunk, available, lines


def _iterator_picked(lines: Iterator[bytes], current: int, numbers: Sequence[int]) -> list[bytes]:
    """The asked-for lines from an iterator of lines whose next line is number ``current``, fewer when it ends."""
    picked = []
    for wanted in numbers:
        next(islice(lines, wanted - current, wanted - current), None)  # skip the lines not asked for
        line = next(lines, None)
        if line is None:
            break
        picked.append(line)
        current = wanted + 1
    return picked


def _readline_picked(stream, chunk: int, numbers: Sequence[int]) -> list[bytes]:
    """The asked-for lines of a chunk, line by line from its start, holding one line at a time (a line past
    the end of the file is b"")."""
    picked, current = [], chunk * CHUNK_LINES
    for wanted in numbers:
        for _ in range(wanted - current):
            stream.readline()
        picked.append(stream.readline().rstrip(b"\n"))
        current = wanted + 1
    return picked
