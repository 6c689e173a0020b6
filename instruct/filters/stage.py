"""The filter stage: one pass per cluster, in file order, before the cluster is planned into shards.

It reads the cluster's selected lines, drops the contaminated threads (decontaminate.py) and then the near
duplicates among the rest (dedup.py), and returns the line numbers to leave out. The planner removes them from
the selection, so no shard parses them: they reach no prompt, haystack, look-back, paraphrase chunk or word
statistic. Because the pass sees a whole cluster in file order, a duplicate of a post in an earlier shard is
found whatever the sharding and the number of workers.

With dedup on, the passes over a large input run in short-lived child processes (``python -m
instruct.filters.stage``, jobs in and results out as pickles): datasketch imports scipy, which would add ~40 MiB
to every process of the run that imported it (multiprocessing's spawn would import run.py, and with it Hydra,
in the child as well).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from instruct.errors import InstructError
from instruct.clusterfile import CHUNK_LINES, ClusterFile, read_lines
from instruct.filters.decontaminate import Decontaminator
from instruct.filters.dedup import ClusterIndex, DedupParams
from instruct.parsing import Reject, parse_thread

DECONTAMINATED, DUPLICATE = "decontaminated", "duplicate"
_IN_PROCESS_LINES = 20_000  # smaller inputs are filtered in this process (a child costs ~0.5 s to start)
_BLOCK_LINES = 64 * CHUNK_LINES  # selected line numbers turned into a list at a time (not 36 B each at once)
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class FilterStage:
    """What the stage applies; picklable, so a spawned process gets a copy.

    Args:
        decontaminator: the evaluation index, or None.
        dedup: the near-duplicate settings, or None (off).
    """

    decontaminator: Decontaminator | None = None
    dedup: DedupParams | None = None

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
        bands: the LSH (bands, rows) used, when dedup is on (found where datasketch is imported).
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
    index = ClusterIndex(stage.dedup, len(selected)) if stage.dedup is not None else None
    decontaminator = stage.decontaminator
    block_lines = max(len(selected), 1) if cluster.compressed else _BLOCK_LINES  # a gzip stream is read once
    for block in range(0, len(selected), block_lines):  # line numbers as Python ints, a block at a time
        for line, raw in read_lines(cluster, selected[block: block + block_lines].tolist()):
            try:
                thread = parse_thread(raw, cluster=cluster.key, line=line + 1)
            except Reject:
                continue  # the shard rejects it, with its reason
            match = decontaminator.match_thread(thread) if decontaminator is not None else None
            if match is not None:
                dropped[line] = f"{DECONTAMINATED}: {match.by}"
                result.by_eval_file[match.eval_file] += 1
                result.contamination.append({
                    "cluster": cluster.key, "file": str(cluster.path), "line": line + 1, "thread_id": thread.id,
                    "eval_id": match.eval_id, "eval_file": decontaminator.files[match.eval_file].path,
                    "match": match.by, "ngram": match.ngram})
                continue
            post = thread.anchor_post() if index is not None else None
            if post is not None:
                index.add(line, post.text)
    if index is not None:
        result.bands = (index.b, index.r)
        for line, reason in index.duplicates(lambda lines: _anchor_texts(cluster, lines)).items():
            dropped[line] = f"{DUPLICATE}: {reason}"
    result.dropped = np.array(sorted(dropped), dtype=np.int64)
    result.reasons = Counter(dropped.values())
    return result


def _anchor_texts(cluster: ClusterFile, lines: list[int]) -> dict[int, str]:
    texts = {}
    for line, raw in read_lines(cluster, lines):
        texts[line] = parse_thread(raw, cluster=cluster.key, line=line + 1).anchor_post().text
    return texts


def run_stage(stage: FilterStage, clusters: list[ClusterFile], selections: list[np.ndarray],
              workers: int) -> list[ClusterFiltered]:
    """The stage's result for every cluster, in order: in this process for small inputs, else in up to
    ``workers`` spawned processes that exit when done."""
    if not stage.active:
        return [ClusterFiltered() for _ in clusters]
    jobs = [(stage, cluster, selected) for cluster, selected in zip(clusters, selections)]
    if stage.dedup is None or sum(map(len, selections)) <= _IN_PROCESS_LINES:
        return [filter_cluster(job) for job in jobs]
    groups = [list(range(start, len(jobs), workers)) for start in range(min(workers, len(jobs)))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
    children = []
    for group in groups:
        child = subprocess.Popen([sys.executable, "-m", "instruct.filters.stage"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=env)
        child.stdin.write(pickle.dumps([jobs[i] for i in group], protocol=pickle.HIGHEST_PROTOCOL))
        child.stdin.close()
        children.append(child)
    results: list[ClusterFiltered | None] = [None] * len(jobs)
    failure = None
    for group, child in zip(groups, children):
        output = child.stdout.read()
        child.wait()
        if child.returncode != 0 or not output:
            failure = failure or InstructError(f"the filter stage's child process failed (exit {child.returncode})")
            continue
        status, payload = pickle.loads(output)
        if status == "error":
            failure = failure or payload
            continue
        for i, filtered in zip(group, payload):
            results[i] = filtered
    if failure is not None:
        raise failure
    return results


def _child() -> None:
    """A child's whole life: jobs from stdin, results (or the error) to stdout."""
    jobs = pickle.load(sys.stdin.buffer)
    try:
        reply = ("ok", [filter_cluster(job) for job in jobs])
    except Exception as exc:  # sent back whole: the parent raises it as if it had run the job itself
        reply = ("error", exc)
    sys.stdout.buffer.write(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":  # run as the module itself, so what it pickles back names instruct.filters.stage
    from instruct.filters.stage import _child as child

    child()
