"""Invariants of the streaming, sharded, parallel pipeline (its speed lives in scripts/benchmark.py).

- the data files and rejects are the same bytes for workers=1 and workers=2;
- cutting a cluster into shards changes no row, look-back across shard boundaries included;
- adding a cluster file changes no other cluster's rows;
- a file larger than the sample is never materialized: only the kept lines are parsed;
- progress=false turns the bar off;
- a run leaves the garbage collector's thresholds as it found them, and a shard is freed as it returns.

The corpus is generated here from the bundled sample: sample threads with their words shuffled by a seeded
generator, fresh ids, and a few bad lines so rejects are compared too.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import ROOT, data_files, manifest_of, run_pipeline

import instruct.executor
import instruct.pipeline
import instruct.worker
from instruct.clusterfile import CHUNK_LINES, scan
from instruct.plan import plan_shards, select_lines, shard_bounds

SAMPLE = ROOT / "data" / "sample"
MIXES = sorted(path.stem for path in (ROOT / "conf" / "tasks").glob("*.yaml"))


def _sample_threads() -> list[dict]:
    return [orjson.loads(line) for path in sorted(SAMPLE.glob("cluster_*.jsonl"))
            for line in path.read_bytes().splitlines() if line.strip()]


def write_cluster(folder: Path, cluster: int, lines: int, bad_every: int = 700) -> Path:
    """A cluster file of ``lines`` varied sample threads (every ``bad_every``-th line is not JSON)."""
    sample = _sample_threads()
    rng = random.Random(f"test_scale:{cluster}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"cluster_{cluster}.jsonl"
    with open(path, "wb") as out:
        for index in range(lines):
            if bad_every and index % bad_every == bad_every - 1:
                out.write(b"{not json\n")
                continue
            base = sample[rng.randrange(len(sample))]
            messages = []
            for position, message in enumerate(base["thread"]):
                varied = dict(message, user_id=f"{rng.getrandbits(64):016x}", relative_integer_time=3 * index + position)
                if message.get("text"):
                    words = message["text"].split()
                    rng.shuffle(words)
                    varied["text"] = " ".join(words)
                messages.append(varied)
            out.write(orjson.dumps({"thread": messages, "cluster_id": cluster, "id": f"t-{cluster}-{index}"}) + b"\n")
    return path



@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three clusters of uneven size, each several chunks long."""
    folder = tmp_path_factory.mktemp("scale") / "clusters"
    for cluster, lines in ((0, 3500), (1, 1200), (2, 2600)):
        write_cluster(folder, cluster, lines)
    return folder


def _run(tmp_path: Path, folder: Path, *overrides: str) -> Path:
    return run_pipeline(tmp_path, f"source.path={folder}", f"dolly.path={SAMPLE / 'dolly.jsonl'}",
                        "source.max_chains_per_cluster=null", *overrides)


@pytest.mark.parametrize("mix", MIXES)
def test_same_bytes_for_one_and_two_workers(tmp_path, corpus, mix):
    overrides = (f"tasks={mix}", "source.shard_lines=1024", "split.validation_fraction=0.1")
    one = data_files(_run(tmp_path / "w1", corpus, "workers=1", *overrides))
    two = data_files(_run(tmp_path / "w2", corpus, "workers=2", *overrides))
    assert sorted(one) == sorted(two)
    assert any(path.startswith("validation/") for path in one)
    assert one["rejects.jsonl"].count(b"\n") == 3500 // 700 + 1200 // 700 + 2600 // 700
    for path in one:
        assert one[path] == two[path], f"{path} differs between workers=1 and workers=2"


@pytest.mark.parametrize("mix", MIXES)
def test_same_rows_with_and_without_shards(tmp_path, corpus, mix):
    whole = _run(tmp_path / "whole", corpus, f"tasks={mix}")
    sharded = _run(tmp_path / "sharded", corpus, f"tasks={mix}", f"source.shard_lines={CHUNK_LINES}")
    # cluster_0 has 3500 lines: four shards, so look-back tasks read across three shard boundaries.
    assert data_files(whole) == data_files(sharded)
    needle_rows = [orjson.loads(line) for line in (whole / "train" / "cluster_0.jsonl").read_bytes().splitlines()]
    needle_rows = [row for row in needle_rows if row["task"] == "needle"]
    if "needle" in manifest_of(whole)["tasks"]:
        # Some haystack of the second shard starts with threads of the first: look-back crossed the cut.
        crossing = [row for row in needle_rows if row["meta"]["line"] - 1 >= CHUNK_LINES
                    and min(int(t.rsplit("-", 1)[1]) for t in row["meta"]["thread_ids"]) < CHUNK_LINES]
        assert crossing


def test_a_sample_is_cut_into_shards_by_its_own_lines(tmp_path, corpus):
    # 1500 of cluster_0's 3500 lines, at most 1024 a shard: two shards, where fixed 1024-line spans of the
    # file would make four; the same rows as one shard.
    capped = ("source.max_chains_per_cluster=1500", "tasks=all")
    whole = _run(tmp_path / "whole", corpus, *capped)
    sharded = _run(tmp_path / "sharded", corpus, *capped, f"source.shard_lines={CHUNK_LINES}")
    assert data_files(whole) == data_files(sharded)
    cluster = scan(corpus / "cluster_0.jsonl")
    shards = plan_shards(cluster, select_lines(cluster, 1500, seed=42), shard_lines=CHUNK_LINES, lookback=0,
                         stats_threads=100)
    assert len(shards) == 2 and sum(len(shard.lines) for shard in shards) == 1500


@pytest.mark.parametrize("lines", [0, 1, CHUNK_LINES - 1, CHUNK_LINES, 5 * CHUNK_LINES + 7, 100_352, 200_705])
@pytest.mark.parametrize("shard_lines", [1, CHUNK_LINES, 1500, 100_000])
def test_every_line_selected_cuts_where_fixed_spans_would(lines, shard_lines):
    span = -(-shard_lines // CHUNK_LINES) * CHUNK_LINES
    fixed = [*range(0, max(lines, 1), span), max(lines, 1)]
    assert shard_bounds(lines, np.arange(lines), shard_lines) == fixed


@pytest.mark.parametrize("shard_lines", [1, 700, CHUNK_LINES, 5000, 100_000])
def test_shards_of_a_sample_take_whole_chunks_up_to_their_quota(shard_lines):
    lines = 256_000
    quota = -(-shard_lines // CHUNK_LINES) * CHUNK_LINES
    selected = np.sort(np.random.default_rng(5).choice(lines, 10_000, replace=False))
    bounds = shard_bounds(lines, selected, shard_lines)
    assert bounds[0] == 0 and bounds[-1] == lines and bounds == sorted(set(bounds))
    assert all(bound % CHUNK_LINES == 0 for bound in bounds[1:-1])
    taken = np.searchsorted(selected, bounds)
    per_shard = np.diff(taken)
    assert per_shard.sum() == len(selected) and (per_shard <= quota).all() and (per_shard > 0).all()
    # No shard could take its next chunk too: that chunk holds the line past its quota.
    assert all(selected[start + quota] < end + CHUNK_LINES for start, end in zip(taken[:-2], bounds[1:-1]))
    if quota >= len(selected):
        assert bounds == [0, lines]  # the paper's 10 000-thread sample of a real file: one shard


def test_adding_a_cluster_changes_no_other_cluster(tmp_path, corpus):
    two = tmp_path / "two"
    two.mkdir()
    for cluster in (0, 1):
        (two / f"cluster_{cluster}.jsonl").write_bytes((corpus / f"cluster_{cluster}.jsonl").read_bytes())
    before = data_files(_run(tmp_path / "before", two, "source.shard_lines=1024"))
    after = data_files(_run(tmp_path / "after", corpus, "source.shard_lines=1024"))
    assert "train/cluster_2.jsonl" in after and "train/cluster_2.jsonl" not in before
    for cluster in (0, 1):
        assert before[f"train/cluster_{cluster}.jsonl"] == after[f"train/cluster_{cluster}.jsonl"]


def test_a_file_larger_than_the_sample_is_never_materialized(tmp_path, monkeypatch):
    lines, cap, stats_threads = 48_000, 400, 150
    folder = tmp_path / "big"
    path = write_cluster(folder, 0, lines, bad_every=0)
    parsed: list[int] = []
    real_parse = instruct.worker.parse_thread

    def counting_parse(raw: bytes, *, cluster: str, line: int):
        parsed.append(line)
        return real_parse(raw, cluster=cluster, line=line)

    settings = (f"dolly.path={SAMPLE / 'dolly.jsonl'}", f"source.max_chains_per_cluster={cap}",
                f"source.stats_threads={stats_threads}", "tasks=paper",
                "card.chart=false")  # the chart is drawn in memory of its own, whatever the input size
    # A first small run imports every module and fills the one-time tables, so the peak below is the run's own.
    run_pipeline(tmp_path / "warm", f"source.path={write_cluster(tmp_path / 'small', 0, 50, bad_every=0).parent}",
                 *settings)
    monkeypatch.setattr(instruct.worker, "parse_thread", counting_parse)
    tracemalloc.start()
    try:
        run_dir = run_pipeline(tmp_path, f"source.path={folder}", *settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    counts = manifest_of(run_dir)["counts"]
    assert counts["threads_used"] + counts["filtered"] == cap  # the sample repeats posts: dedup removes some
    # Only the kept lines are parsed (the statistics sample is drawn from them and parsed once); the other
    # 47 600 lines are skipped as raw bytes (the filter stage reads the kept lines' texts without a parse).
    kept = {int(line) + 1 for line in select_lines(scan(path), cap, seed=42)}
    assert set(parsed) <= kept and len(set(parsed)) == counts["threads_used"]
    assert len(parsed) <= cap + stats_threads
    # The file is never held: the peak of Python allocations stays well below its size.
    assert peak < path.stat().st_size / 4, f"peak {peak} bytes for a {path.stat().st_size}-byte file"


@pytest.mark.parametrize(("progress", "disabled"), [("false", True), ("true", None)])
def test_progress_bar_follows_the_progress_key(tmp_path, monkeypatch, progress, disabled):
    """progress=false turns the bar off; progress=true leaves it to tqdm (shown only on a terminal)."""
    bars: list[dict] = []
    real_tqdm = instruct.pipeline.tqdm

    def recording_tqdm(*args, **kwargs):
        bars.append(kwargs)
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(instruct.pipeline, "tqdm", recording_tqdm)
    folder = tmp_path / "clusters"
    write_cluster(folder, 0, 300, bad_every=0)
    run_pipeline(tmp_path, f"source.path={folder}", f"dolly.path={SAMPLE / 'dolly.jsonl'}", f"progress={progress}")
    assert len(bars) == 1
    assert bars[0]["disable"] is disabled
    assert bars[0]["total"] == 300


def test_a_run_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    """Shards run with a higher gen-0 threshold (fewer collections); it is set back when a shard ends."""
    before = gc.get_threshold()
    _run(tmp_path, write_cluster(tmp_path / "small", 0, 300).parent, "workers=1")
    assert gc.get_threshold() == before


@pytest.mark.parametrize("mix", ["paper", "all"])
def test_a_shard_is_freed_as_it_returns(tmp_path, monkeypatch, mix):
    """A shard's feed, statistics and threads form no reference cycle, so they are freed when it returns, not
    at a rare full collection: with fewer collections (see above) such cycles piled up across the clusters
    of a run and raised its peak memory."""
    real_run_shard = instruct.worker.run_shard
    left: list[str] = []

    def checked_run_shard(shard, setup):
        gc.collect()
        gc.disable()
        try:
            counts = real_run_shard(shard, setup)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left.extend(type(item).__qualname__ for item in gc.garbage
                        if type(item).__module__.startswith("instruct"))
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        return counts

    monkeypatch.setattr(instruct.worker, "run_shard", checked_run_shard)
    monkeypatch.setattr(instruct.executor, "run_shard", checked_run_shard)
    _run(tmp_path, write_cluster(tmp_path / "small", 0, 600).parent, "workers=1", f"tasks={mix}",
         "split.validation_fraction=0.2")
    assert left == []
