"""Plan the work for one cluster file: which lines are used, which lines feed the statistics, and the
shards (line ranges of whole chunks) that workers process independently."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instruct.clusterfile import CHUNK_LINES, ClusterFile
from instruct.seeding import SELECT, rng_for


@dataclass(slots=True)
class Shard:
    """A run of whole chunks of one cluster file.

    Args:
        cluster: the scanned file.
        index: the shard's number within the cluster.
        start, end: the 0-based line range [start, end).
        lines: the selected lines in that range (ascending).
        warmup: selected lines before ``start`` that feed the look-back of tasks (read, never emitted).
        stats_lines: the lines the cluster's word statistics are computed from (the same for every shard).
        filtered: lines of [start, end) the filter stage removed from the selection (instruct/filters).
    """

    cluster: ClusterFile
    index: int
    start: int
    end: int
    lines: np.ndarray
    warmup: np.ndarray
    stats_lines: np.ndarray
    filtered: int = 0


def select_lines(cluster: ClusterFile, cap: int | None, seed: int) -> np.ndarray:
    """A uniform random sample of ``cap`` lines (all lines when the file has no more), in file order.

    The scan already counted the lines, so the sample is drawn as line numbers: only the kept lines are
    ever parsed, and memory is one integer per kept line.
    """
    if cap is None or cluster.lines <= cap:
        return np.arange(cluster.lines, dtype=np.int64)
    rng = rng_for(seed, cluster.key, SELECT)
    return np.sort(rng.choice(cluster.lines, size=cap, replace=False)).astype(np.int64)


def plan_shards(cluster: ClusterFile, selected: np.ndarray, *, shard_lines: int, lookback: int,
                stats_threads: int, filtered: np.ndarray | None = None) -> list[Shard]:
    """Shards of whole chunks over the ``selected`` lines; ``filtered``: selected lines the filter stage
    removed (already left out of ``selected``), counted in the shard they fall in."""
    count = min(stats_threads, len(selected))
    stats_lines = np.unique(selected[np.linspace(0, len(selected) - 1, num=count).astype(np.int64)]) if count else selected[:0]
    # A gzip stream cannot seek cheaply: one shard per file.
    bounds = [0, max(cluster.lines, 1)] if cluster.compressed else shard_bounds(cluster.lines, selected, shard_lines)
    shards = []
    for index, (start, end) in enumerate(zip(bounds, bounds[1:])):
        end = min(end, cluster.lines)
        lo, hi = np.searchsorted(selected, [start, end])
        dropped = int(np.searchsorted(filtered, end) - np.searchsorted(filtered, start)) if filtered is not None else 0
        shards.append(Shard(cluster, index, start, end, selected[lo:hi], selected[max(0, lo - lookback):lo],
                            stats_lines, dropped))
    return shards


def shard_bounds(lines: int, selected: np.ndarray, shard_lines: int) -> list[int]:
    """The line numbers where shards start, then the end: runs of whole chunks, each holding at most
    ``shard_lines`` (rounded up to whole chunks) of the selected lines, and as many chunks as that allows.

    The work decides the cut, not the file's size: a sample of a file far larger than it (10 000 of a real
    BluePrint file's ~256 k threads) is one shard, which reads the statistics lines once, not once per 100 k
    lines of file. With every line selected, the cuts are those of fixed ``shard_lines`` spans.
    """
    quota = -(-shard_lines // CHUNK_LINES) * CHUNK_LINES
    bounds, taken = [0], 0  # taken: the selected lines before the last bound
    while len(selected) - taken > quota:
        # The chunk of the first line past the quota starts the next shard (always past the last bound: the
        # quota's lines span at least quota line numbers, whole chunks of them).
        bounds.append(int(selected[taken + quota]) // CHUNK_LINES * CHUNK_LINES)
        taken = int(np.searchsorted(selected, bounds[-1]))
    bounds.append(max(lines, 1))
    return bounds
