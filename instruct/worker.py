"""Process one shard: read its lines, parse, offer each thread to the tasks, write the rows to part files.

A shard never knows how it is scheduled; it runs the same in the main process or in a pool worker.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import jsonlines
import orjson

from instruct.clusterfile import CHUNK_LINES, read_chunks, read_lines
from instruct.counts import Counts, TaskCounts
from instruct.feed import Feed
from instruct.formats import RecordEncoder
from instruct.parsing import Reject, parse_thread
from instruct.plan import Shard
from instruct.records import Thread
from instruct.responders.pending import defer
from instruct.seeding import CHUNK, Draws, rng_for, unit_interval
from instruct.tasks.base import Task, TaskContext
from instruct.text import ClusterStats, PostWords

TRAIN, VALIDATION = "train", "validation"
_BUFFER = 1 << 20  # part files are written in large blocks
_GC_THRESHOLD = 20000  # gen-0 threshold while a shard runs: a few chunks' worth of containers (see _rare_collections)


@dataclass(slots=True)
class Setup:
    """What every shard of a run shares; built once per process.

    Args:
        seed: the run's seed.
        tasks: bound task generators with weight > 0.
        encoder: the output format.
        validation_fraction: share of threads put in the validation split.
        parts_dir: where shards write their part files.
        progress: called with the number of threads done, every chunk.
        deferred_tasks: tasks whose rows wait for the responder (written as pending, see responders/pending).
        responder: the run's responder, used by the parent process only (None: responder=none).
        budget: counts every row's tokens and drops the rows over the limit (instruct/filters/budget.py).
    """

    seed: int
    tasks: list[Task]
    encoder: RecordEncoder
    validation_fraction: float
    parts_dir: Path
    progress: Callable[[int], None] = field(default=lambda n: None)
    deferred_tasks: frozenset = frozenset()
    responder: object = None
    budget: object = None

    @property
    def lookback(self) -> int:
        return max((task.lookback for task in self.tasks), default=0)

    def split_of(self, thread_id: str) -> str:
        if self.validation_fraction <= 0:
            return TRAIN
        return VALIDATION if unit_interval(self.seed, thread_id) < self.validation_fraction else TRAIN


def part_path(parts_dir: Path, cluster: str, shard: int, kind: str) -> Path:
    return parts_dir / f"{cluster}.{shard:05d}.{kind}.jsonl"


def _reject_record(shard: Shard, line: int, reason: str, raw: bytes) -> dict:
    return {"file": str(shard.cluster.path), "line": line + 1, "reason": reason,
            "excerpt": raw[:200].decode("utf-8", errors="replace")}


def _reason_group(reason: str) -> str:
    """'invalid JSON: unexpected character: line 1 column 7 (char 6)' → 'invalid JSON: unexpected character'."""
    return reason.split(":")[0] + (":" + reason.split(":")[1] if reason.count(":") >= 2 else "")


def _cluster_stats(shard: Shard, needed: bool) -> tuple[ClusterStats, dict[int, Thread]]:
    """The cluster's word statistics, and the threads parsed for them that this shard reads again (kept so
    no line is parsed twice; at most ``stats_threads`` of them, so memory stays bounded)."""
    stats, parsed = ClusterStats(), {}
    if not needed:
        return stats, parsed
    first = int(shard.warmup[0]) if len(shard.warmup) else shard.start
    key = shard.cluster.key
    for line, raw in read_lines(shard.cluster, shard.stats_lines.tolist()):
        try:
            thread = parse_thread(raw, cluster=key, line=line + 1)
        except Reject:
            continue
        if first <= line < shard.end:
            parsed[line] = thread
        post = thread.anchor_post()
        if post is not None:  # the analysis stays on the thread for the tasks it is offered to
            thread.anchor_words = analysis = PostWords(post.text)
            stats.add_post(analysis)
    return stats, parsed


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Python's cyclic GC, run less often while a shard runs.

    With the default threshold (700 net container allocations) a shard runs several young collections a
    1024-line chunk, as each chunk's threads come and go, and now and then a full one that walks every object of
    the process (the config, the modules …); at _GC_THRESHOLD young ones are rare and full ones do not happen
    within a shard (the cost of each: README, "Why the hot path is shaped so"). Nothing is left uncollected: a shard's
    threads are freed by reference counting as they leave the feed, and the collector still runs, on a few
    chunks' worth of objects at a time.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def run_shard(shard: Shard, setup: Setup) -> Counts:
    """Generate the rows of one shard into its part files and return what it counted."""
    key = shard.cluster.key
    counts = Counts(read=shard.end - shard.start, sampled_out=(shard.end - shard.start) - len(shard.lines) - shard.filtered,
                    filtered=shard.filtered)  # the filter stage left these lines out of shard.lines
    # Only a task that looks back reads the feed; without one, no line is logged into it.
    feed = Feed(setup.lookback) if setup.lookback else None
    writers: dict[str, tuple] = {}

    def writer(split: str):
        if split not in writers:
            data = part_path(setup.parts_dir, key, shard.index, split).open("wb", buffering=_BUFFER)
            meta = (part_path(setup.parts_dir, key, shard.index, split + ".meta").open("wb", buffering=_BUFFER)
                    if setup.encoder.sidecar else None)
            pending = (part_path(setup.parts_dir, key, shard.index, split + ".pending").open("wb")
                       if setup.deferred_tasks else None)
            writers[split] = (data, meta, pending)
        return writers[split]

    first_chunk = shard.start // CHUNK_LINES  # the chunks before it hold warm-up lines only
    with _rare_collections(), part_path(setup.parts_dir, key, shard.index, "rejects").open("wb") as reject_file:
        stats, parsed = _cluster_stats(shard, any(t.uses_stats for t in setup.tasks))
        context = TaskContext(cluster=key, stats=stats, feed=feed)
        if feed is not None:
            context.earlier = lambda: feed.earlier(context.split)
        rejects = jsonlines.Writer(reject_file, dumps=orjson.dumps)
        for chunk_index, numbers, raws in read_chunks(shard.cluster, shard.warmup.tolist() + shard.lines.tolist()):
            chunk, rejected = _parse_chunk(numbers, raws, key, parsed, setup.split_of)
            if chunk_index < first_chunk:  # warm-up lines only feed the look-back: neither offered nor counted
                for item in chunk:
                    feed.append(item)  # (there are warm-up lines only when a task looks back)
                continue
            for line, reason, raw in rejected:
                counts.rejected += 1
                counts.reject_reasons[_reason_group(reason)] += 1
                rejects.write(_reject_record(shard, line, reason, raw))
            _offer_chunk(chunk, chunk_index, context, feed, setup, counts, writer)
        # Lines the scan counted but the stream could not give again (a truncated .gz ends early).
        truncated = shard.cluster.truncated
        for line in shard.lines[counts.used + counts.rejected:].tolist():
            counts.rejected += 1
            counts.reject_reasons["unreadable: " + (truncated.split(":")[0] if truncated else "stream ended early")] += 1
            rejects.write(_reject_record(shard, line, f"unreadable: {truncated or 'stream ended early'}", b""))
    for files in writers.values():
        for handle in files:
            if handle:
                handle.close()
    # The look-back function refers to the context that holds it: without this cycle the shard's feed,
    # statistics and last chunk are freed as it returns, not at a rare full collection (which _GC_THRESHOLD
    # makes rarer still, so a many-file run in one process would hold several shards at once).
    context.earlier = list
    return counts


def _parse_chunk(numbers: Sequence[int], raws: list[bytes], cluster: str, parsed: dict[int, Thread],
                 split_of: Callable[[str], str]) -> tuple[list[tuple[Thread, str] | None], list[tuple[int, str, bytes]]]:
    """A chunk's lines as the offering loop takes them, ``(thread, split)`` or None for a rejected line, and
    the rejected lines as ``(line, reason, raw)``. A thread the statistics already parsed is taken from ``parsed``."""
    items, rejected = [], []
    for line, raw in zip(numbers, raws):
        try:
            thread = parsed.pop(line, None) or parse_thread(raw, cluster=cluster, line=line + 1)
        except Reject as reject:
            items.append(None)
            rejected.append((line, str(reject), raw))
            continue
        items.append((thread, split_of(thread.id)))
    return items, rejected


@dataclass(slots=True)
class _Offer:
    """A task as the offering loop sees it: what it needs per thread, looked up once per chunk."""

    task: Task
    counts: TaskCounts
    weight: float
    deferred: bool  # its rows wait for the responder


def _offer_chunk(chunk, chunk_index, context: TaskContext, feed: Feed | None, setup: Setup, counts: Counts,
                 writer) -> None:
    if not chunk:
        return
    draws = Draws(rng_for(setup.seed, context.cluster, CHUNK, chunk_index))
    context.chunk = [item for item in chunk if item is not None]
    for task in setup.tasks:
        task.begin_chunk(context)
    offers = [_Offer(task, counts.task(task.name), task.weight, task.name in setup.deferred_tasks)
              for task in setup.tasks]
    for offer in offers:  # every used thread is offered to every task
        offer.counts.offered += len(context.chunk)
    counts.used += len(context.chunk)
    encoder, budget = setup.encoder, setup.budget
    for item in chunk:
        if item is not None:
            thread, context.split = item
            _offer_thread(thread, context, encoder, counts, draws, writer(context.split), offers, budget)
        if feed is not None:  # each line joins the feed after it was offered, so the next thread sees it
            feed.append(item)
    setup.progress(len(chunk))


def _offer_thread(thread: Thread, context: TaskContext, encoder: RecordEncoder, counts: Counts, draws: Draws,
                  files: tuple, offers: list[_Offer], budget) -> None:
    eligible, weight = [], 0.0
    for offer in offers:
        reason = offer.task.decline_reason(thread, context)
        if reason is None:
            eligible.append(offer)
            weight += offer.weight
        else:
            offer.counts.declined[reason] += 1
    # Draw by weight among the tasks that can use the thread; if the drawn one cannot build a row after
    # all, draw again among the rest, so a thread is lost only when no task can use it. (Plain Python: a
    # handful of weights is faster summed here than through numpy arrays.)
    while eligible:
        drawn = len(eligible) - 1
        if drawn:
            target, cumulative = draws.uniform() * weight, 0.0
            for index, offer in enumerate(eligible):
                cumulative += offer.weight
                if target < cumulative:
                    drawn = index
                    break
        offer = eligible.pop(drawn)
        weight -= offer.weight
        row = offer.task.build(thread, context, draws)
        if budget is not None and not isinstance(row, str):  # filters/budget.py: counted, or dropped as too long
            row = budget.admit(row, offer.counts.lengths, offer.deferred)
        if isinstance(row, str):
            offer.counts.failed[row] += 1
            continue
        data, meta, pending = files
        if offer.deferred:
            defer(row, data, pending)  # the parent asks the LLM and puts the answered row at this place
        else:
            line, meta_line = encoder.encode(row)
            data.write(line)
            if meta is not None:
                meta.write(meta_line)
        offer.counts.produced += 1
        if row.meta["variant"] is not None:  # rows per prompt variant (summarization: thread vs feed)
            offer.counts.variants[row.meta["variant"]] += 1
        counts.templates[row.meta["template_id"]] += 1
        counts.rows[context.split] += 1
        return
    counts.no_task += 1
