"""The filter stage: one pass per cluster, in file order, before the cluster is planned into shards.

It reads the cluster's selected lines, drops the contaminated threads (decontaminate.py) and then the near
duplicates among the rest (dedup.py), and returns the line numbers to leave out. The planner removes them from
the selection, so no shard parses them: they reach no prompt, haystack, look-back, paraphrase chunk or word
statistic. Because the pass sees a whole cluster in file order, a duplicate of a post in an earlier shard is
found whatever the sharding and the number of workers.

The pass reads each line's texts from its JSON without validating the thread (texts.py): it parses a line in
full only before counting it against another (a contaminated line; a post that shares a dedup key), so a line
the shards reject is never removed nor makes a later one a duplicate. Threads are checked for contamination a
batch at a time (the check hashes a batch's n-grams at once) and then handled in file order, so dedup sees the
same posts in the same order as a thread-by-thread check would give it.

No process of the run imports datasketch (whose lsh module imports scipy, ~40 MiB): dedup.py asks it for its
parameters in a short child once (and keeps the answer in the user's cache folder) and computes the signatures
itself with numpy, a batch of posts at a time, so the passes run on the run's own executor, a cluster a job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from instruct.clusterfile import CHUNK_LINES, ClusterFile, read_lines
from instruct.filters import normalize, texts
from instruct.filters.decontaminate import Decontaminator
from instruct.filters.dedup import ClusterIndex, DedupParams, Hashing
from instruct.filters.polyhash import Powers
from instruct.parsing import Reject, parse_thread

DECONTAMINATED, DUPLICATE = "decontaminated", "duplicate"
_BLOCK_LINES = 64 * CHUNK_LINES  # selected line numbers turned into a list at a time (not 36 B each at once)
_PENDING_BYTES = 1 << 20  # lines held for a contamination check at most (besides CHUNK_LINES of them)


@dataclass
class FilterStage:
    """What the stage applies.

    Args:
        decontaminator: the evaluation index, or None.
        dedup: the near-duplicate settings, or None (off).
        hashing: datasketch's answer for ``dedup`` (``DedupParams.hashing``), asked when the stage is made, so
            settings it cannot band fail before the run folder exists.
    """

    decontaminator: Decontaminator | None = None
    dedup: DedupParams | None = None
    hashing: Hashing | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.hashing = self.dedup.hashing() if self.dedup is not None else None

    @property
    def active(self) -> bool:
        return self.decontaminator is not None or self.dedup is not None


@dataclass
class ClusterFiltered:
    """What the stage removed from one cluster.

    Args:
        dropped: the removed line numbers, ascending.
        reasons: ``decontaminated: id|ngram|text``, ``duplicate: exact|near`` → count.
        by_eval_file: evaluation file index → threads it removed.
        contamination: one record per decontaminated thread, for contamination.jsonl.
        bands: the LSH (bands, rows) used, when dedup is on.
    """

    dropped: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    reasons: Counter = field(default_factory=Counter)
    by_eval_file: Counter = field(default_factory=Counter)
    contamination: list[dict] = field(default_factory=list)
    bands: tuple[int, int] | None = None

    def kept(self, selected: np.ndarray) -> np.ndarray:
        return np.setdiff1d(selected, self.dropped, assume_unique=True) if len(self.dropped) else selected


def filter_cluster(job: tuple[FilterStage, ClusterFile, np.ndarray]) -> ClusterFiltered:
    """The stage's pass over one cluster's selected lines (in file order)."""
    stage, cluster, selected = job
    result = ClusterFiltered()
    dropped: dict[int, str] = {}
    index = ClusterIndex(stage.dedup, len(selected), stage.hashing) if stage.dedup is not None else None
    decontaminator = stage.decontaminator
    pending = _Pending(stage.decontaminator, cluster, index, dropped, result)
    block_lines = max(len(selected), 1) if cluster.compressed else _BLOCK_LINES  # a gzip stream is read once
    for block in range(0, len(selected), block_lines):  # line numbers as Python ints, a block at a time
        for line, raw in read_lines(cluster, selected[block: block + block_lines].tolist()):
            if decontaminator is None:  # dedup alone: the anchor post only
                anchor = texts.anchor_text(raw)
                joined = normalize.joined(anchor) if anchor is not None else None
                if joined:
                    index.add(line, joined)
                continue
            read = texts.message_texts(raw)
            if read is not None:  # else the shard rejects it, with its reason
                pending.add(line, raw, read[0], [normalize.joined(text) for text in read[1]])
    pending.check()
    if index is not None:
        for line, reason in index.duplicates(lambda lines: _anchor_texts(cluster, lines)).items():
            dropped[line] = f"{DUPLICATE}: {reason}"
        result.bands = (index.b, index.r)
    result.dropped = np.array(sorted(dropped), dtype=np.int64)
    result.reasons = Counter(dropped.values())
    return result


class _Pending:
    """Threads read but not yet checked for contamination, checked a batch at a time (the check hashes a batch
    at once) and then handled in file order: a contaminated one is removed, any other goes on to dedup (its
    anchor post, the last message with text)."""

    def __init__(self, decontaminator: Decontaminator | None, cluster: ClusterFile, index: ClusterIndex | None,
                 dropped: dict[int, str], result: ClusterFiltered):
        self.decontaminator, self.cluster, self.index = decontaminator, cluster, index
        self.dropped, self.result = dropped, result
        self.powers = Powers()
        self.lines: list[int] = []
        self.raws: list[bytes] = []  # to parse a contaminated line before it is removed
        self.own_ids: list[str | None] = []
        self.joined: list[list[bytes]] = []
        self.size = 0

    def add(self, line: int, raw: bytes, own_id: str | None, joined: list[bytes]) -> None:
        """A thread by its line, its own id and ``normalize.joined`` of each message with text."""
        self.lines.append(line)
        self.raws.append(raw)
        self.own_ids.append(own_id)
        self.joined.append(joined)
        self.size += len(raw)
        if len(self.lines) >= CHUNK_LINES or self.size >= _PENDING_BYTES:
            self.check()

    def check(self) -> None:
        decontaminator, cluster, index = self.decontaminator, self.cluster, self.index
        matches = decontaminator.match_many(self.own_ids, self.joined, self.powers) if self.lines else {}
        for number, match in sorted(matches.items()):
            line = self.lines[number]
            try:
                thread = parse_thread(self.raws[number], cluster=cluster.key, line=line + 1)
            except Reject:
                continue  # the shard rejects it, with its reason
            self.dropped[line] = f"{DECONTAMINATED}: {match.by}"
            self.result.by_eval_file[match.eval_file] += 1
            self.result.contamination.append({
                "cluster": cluster.key, "file": str(cluster.path), "line": line + 1, "thread_id": thread.id,
                "eval_id": match.eval_id, "eval_file": decontaminator.files[match.eval_file].path,
                "match": match.by, "ngram": match.ngram})
        if index is not None:
            for number, (line, joined) in enumerate(zip(self.lines, self.joined)):
                if joined and joined[-1] and number not in matches:
                    index.add(line, joined[-1])
        self.lines, self.raws, self.own_ids, self.joined, self.size = [], [], [], [], 0


def _anchor_texts(cluster: ClusterFile, lines: list[int]) -> Iterator[tuple[int, str]]:
    """(line, anchor post text) for the lines the shards accept, in order."""
    for line, raw in read_lines(cluster, lines):
        try:
            thread = parse_thread(raw, cluster=cluster.key, line=line + 1)
        except Reject:
            continue
        yield line, thread.anchor_post().text


def run_stage(stage: FilterStage, clusters: list[ClusterFile], selections: list[np.ndarray],
              executor) -> list[ClusterFiltered]:
    """The stage's result for every cluster, in order, one cluster a job on the run's executor."""
    if not stage.active:
        return [ClusterFiltered() for _ in clusters]
    return executor.map(filter_cluster, [(stage, cluster, selected) for cluster, selected in zip(clusters, selections)])
