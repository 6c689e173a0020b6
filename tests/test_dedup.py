"""Near-duplicate removal (instruct/filters/dedup.py): within a cluster, a post that repeats an earlier one
exactly or nearly (Jaccard >= dedup.threshold over word shingles) is removed before any task sees it, the
first in file order kept, whatever the sharding and the number of workers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import data_files, manifest_of, read_jsonl, rows_of, run_pipeline

from instruct.clusterfile import CHUNK_LINES, scan
from instruct.filters.dedup import DedupParams, jaccard, shingles, signatures
from instruct.filters.stage import FilterStage, filter_cluster

VOCABULARY = [f"{a}{b}" for a in ("bri", "cal", "dor", "fen", "gal", "hur", "lim", "mor", "pra", "sto")
              for b in ("ck", "ne", "sh", "ta", "vo", "ry", "lo", "mi", "tu", "xe")]


def _post(rng: random.Random, words: int = 40) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def _record(n: int, text: str) -> bytes:
    return orjson.dumps({"thread": [{"user_id": f"u{n}", "relative_integer_time": n, "text": text,
                                     "actions": {"post": True}}], "id": f"t-{n}"})


def _cluster(folder: Path, posts: list[str], name: str = "cluster_0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_bytes(b"".join(_record(n, text) + b"\n" for n, text in enumerate(posts)))
    return path


@pytest.fixture
def posts() -> list[str]:
    rng = random.Random(7)
    posts = [_post(rng) for _ in range(CHUNK_LINES + 200)]  # two chunks, so shard_lines=1 gives two shards
    words = posts[0].split()
    posts[5] = posts[0].upper().replace(" ", ",  ") + "!!"                  # the same post, shouted
    posts[CHUNK_LINES + 50] = " ".join(words[:-1] + ["zzz"])              # nearly: one word changed, next shard
    posts[CHUNK_LINES + 60] = " ".join(words[:20] + posts[1].split()[20:])  # half of it: not a duplicate
    return posts


def _filter(path: Path, params=DedupParams()):
    """The removed line numbers and the stage's result for one cluster file, every line selected."""
    cluster = scan(path)
    result = filter_cluster((FilterStage(None, params), cluster, np.arange(cluster.lines, dtype=np.int64)))
    return result.dropped.tolist(), result


def test_exact_and_near_duplicates_are_removed_and_the_first_is_kept(tmp_path, posts):
    dropped, result = _filter(_cluster(tmp_path, posts))
    assert sorted(dropped) == [5, CHUNK_LINES + 50]
    assert result.reasons == {"duplicate: exact": 1, "duplicate: near": 1}
    assert result.bands == (9, 7)  # what datasketch's MinHashLSH picks for 0.8 with 64 permutations
    near = jaccard(shingles(posts[0], 3), shingles(posts[CHUNK_LINES + 50], 3))
    half = jaccard(shingles(posts[0], 3), shingles(posts[CHUNK_LINES + 60], 3))
    assert near >= 0.8 > half


def test_the_signatures_are_datasketchs_on_the_real_samples_posts(shared_lines):
    """The numpy batch computes exactly what datasketch's MinHash computes post by post, with the shingle hash
    of dedup.py (``shingle_hash``, which the batch computes for all shingles at once) as its hash function."""
    from datasketch import MinHash

    from instruct.filters import normalize
    from instruct.filters.dedup import _post_hashes, shingle_hash
    from instruct.filters.polyhash import polynomial
    from instruct.parsing import parse_thread

    params = DedupParams()
    hashing = params.hashing()
    texts = []
    for shape, key, line, raw in shared_lines:
        if shape == "released":
            texts += [m.text for m in parse_thread(raw, cluster=key, line=line + 1).messages if m.text]
    posts = [joined for joined in map(normalize.joined, texts) if joined]
    assert len(posts) >= 400  # every post with text of the 400 threads
    hashes, starts, exact = _post_hashes(posts, params.shingle)
    ours = signatures(hashes, starts, hashing, params.num_perm)
    for post, signature, whole, first in zip(posts, ours, exact.tolist(), starts.tolist()):
        grams = shingles(post.decode(), params.shingle)
        assert hashes[first:first + len(_in_order(post, params.shingle))].tolist() == [
            shingle_hash(gram) for gram in _in_order(post, params.shingle)]
        assert whole == polynomial(post)
        minhash = MinHash(num_perm=params.num_perm, seed=1, hashfunc=shingle_hash)
        minhash.update_batch(sorted(grams))
        assert np.array_equal(signature, minhash.hashvalues)


def _in_order(post: bytes, size: int) -> list[bytes]:
    words = post.split(b" ")
    return [b" ".join(words[i:i + size]) for i in range(max(len(words) - size + 1, 1))]


def test_the_threshold_decides(tmp_path, posts):
    dropped, _ = _filter(_cluster(tmp_path, posts), DedupParams(threshold=0.95))
    assert sorted(dropped) == [5]  # only the exact copy is that similar


def test_a_near_duplicate_of_a_post_in_another_shard_is_removed_for_any_worker_count(tmp_path, posts):
    folder = tmp_path / "in"
    _cluster(folder, posts)
    args = (f"source.path={folder}", "source.shard_lines=1", "mix=none", "tasks=all",
            "source.max_chains_per_cluster=null")
    one = run_pipeline(tmp_path / "one", *args, "workers=1")
    two = run_pipeline(tmp_path / "two", *args, "workers=2")
    assert data_files(one) == data_files(two)
    manifest = manifest_of(one)
    assert manifest["filters"]["removed_per_cluster"] == {"cluster_0": {"duplicate: exact": 1, "duplicate: near": 1}}
    assert manifest["filters"] == manifest_of(two)["filters"]
    counts = manifest["inputs"]["clusters"][0]
    assert counts["read"] == counts["used"] + counts["sampled_out"] + counts["rejected"] + counts["filtered"]
    assert counts["filtered"] == 2 and counts["used"] == len(posts) - 2
    used_ids = {tid for row in rows_of(one) for tid in row["meta"]["thread_ids"]}
    assert "t-5" not in used_ids and f"t-{CHUNK_LINES + 50}" not in used_ids  # not in any haystack either
    assert "t-0" in used_ids


def test_duplicates_in_different_clusters_are_both_kept(tmp_path, posts):
    folder = tmp_path / "in"
    _cluster(folder, posts[:300], "cluster_0")
    _cluster(folder, posts[:300], "cluster_1")
    manifest = manifest_of(run_pipeline(tmp_path, f"source.path={folder}", "mix=none"))
    assert manifest["filters"]["removed_per_cluster"] == {"cluster_0": {"duplicate: exact": 1},
                                                          "cluster_1": {"duplicate: exact": 1}}


def test_dedup_none_keeps_every_post(tmp_path, posts):
    folder = tmp_path / "in"
    _cluster(folder, posts[:300])
    manifest = manifest_of(run_pipeline(tmp_path, f"source.path={folder}", "mix=none", "dedup=none"))
    assert manifest["counts"]["filtered"] == 0 and manifest["filters"]["dedup"] is None


def test_no_two_post_rows_of_the_real_sample_have_near_identical_responses(tmp_path, shared_sample):
    run = run_pipeline(tmp_path, f"source.path={shared_sample / 'released'}", "tasks=persona", "mix=none",
                       "source.max_chains_per_cluster=null")
    by_cluster: dict[str, list[set]] = {}
    for row in rows_of(run):
        if row["task"] in ("topic_post", "keyword_post"):
            by_cluster.setdefault(row["meta"]["cluster"], []).append(shingles(row["messages"][1]["content"], 3))
    for sets in by_cluster.values():
        for i, a in enumerate(sets):
            assert all(jaccard(a, b) < 0.8 for b in sets[i + 1:])



def test_a_threshold_the_permutations_cannot_band_fails_naming_both_keys_before_any_folder(tmp_path, posts):
    from conftest import compose_config

    from instruct.errors import InstructError
    from instruct.pipeline import generate

    folder = tmp_path / "in"
    _cluster(folder, posts[:50])
    with pytest.raises(InstructError, match=r"dedup.threshold=0.99 with dedup.num_perm=64: .*too small"):
        generate(compose_config("progress=false", f"source.path={folder}", "dedup.threshold=0.99"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_datasketchs_answer_is_kept_for_later_runs_and_a_damaged_copy_is_asked_again(tmp_path, monkeypatch):
    """The child that asks datasketch runs once per settings and datasketch version; later runs read its answer
    from the cache folder (the same values), and a cut file is not trusted."""
    from datasketch import MinHash, MinHashLSH

    from instruct.filters import dedup

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    params = DedupParams(threshold=0.7, num_perm=32)

    def fresh_process():  # what a new run starts with: nothing answered
        monkeypatch.setattr(dedup, "_ANSWERS", {})

    fresh_process()
    first = params.hashing()
    assert params.answer_cache().parent == tmp_path / "instruct" and params.answer_cache().is_file()
    lsh = MinHashLSH(threshold=0.7, num_perm=32, weights=(0.1, 0.9))
    a, b = MinHash(num_perm=32, seed=1).permutations
    assert (first.bands, first.rows) == (lsh.b, lsh.r)

    fresh_process()
    monkeypatch.setattr(DedupParams, "_ask_child", lambda self: pytest.fail("asked datasketch again"))
    kept = params.hashing()  # no child: the kept answer is used
    assert (kept.bands, kept.rows) == (lsh.b, lsh.r) and kept.a.dtype == np.uint32
    assert np.array_equal(kept.a, a) and np.array_equal(kept.b, b)

    params.answer_cache().write_bytes(params.answer_cache().read_bytes()[:40])
    monkeypatch.undo()  # the child may be asked again, and the cache folder is the test's
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh_process()
    again = params.hashing()  # asked again, and kept again
    assert np.array_equal(again.a, a) and dedup._recall(params.answer_cache()) is not None


def test_a_cache_folder_that_cannot_be_written_costs_a_run_nothing_but_the_child(tmp_path, monkeypatch):
    """The answer is kept whole or not at all: a written one leaves no temporary file beside it, and a cache
    folder that cannot be made (here under a file) leaves the run its answer, asked of datasketch."""
    from instruct.filters import dedup

    params = DedupParams(threshold=0.75, num_perm=32)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(dedup, "_ANSWERS", {})
    written = params.hashing()
    assert [p.name for p in (tmp_path / "cache" / "instruct").iterdir()] == [params.answer_cache().name]

    blocker = tmp_path / "a file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(dedup, "_ANSWERS", {})
    unkept = params.hashing()
    assert not params.answer_cache().exists()
    assert (unkept.bands, unkept.rows) == (written.bands, written.rows) and np.array_equal(unkept.a, written.a)


def test_a_line_the_shards_reject_makes_no_later_post_its_duplicate(tmp_path, posts):
    """The stage reads the anchor post from the JSON without validating the thread; a rejected line that says
    the same as a later one is dropped before it can count against it (and is not itself counted as removed)."""
    bad = {"thread": [{"user_id": "", "relative_integer_time": 0, "text": posts[0], "actions": {"post": True}}]}
    worse = {"thread": [{"user_id": "u", "relative_integer_time": "soon", "text": posts[1]}]}
    path = tmp_path / "cluster_0.jsonl"
    lines = [orjson.dumps(bad), orjson.dumps(worse), *(_record(n, text) for n, text in enumerate(posts[:4])),
             _record(9, posts[1])]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    dropped, result = _filter(path)
    assert dropped == [6] and result.reasons == {"duplicate: exact": 1}  # the second valid copy of posts[1]


def test_the_keys_only_propose_the_texts_decide(tmp_path, posts, monkeypatch):
    """Every post given the same exact key and the same band keys: the removals are still those of the texts."""
    from instruct.filters import dedup

    expected, _ = _filter(_cluster(tmp_path, posts))
    real = dedup._post_hashes

    def colliding(*args):
        hashes, starts, exact = real(*args)
        return np.zeros_like(hashes), starts, np.zeros_like(exact)

    monkeypatch.setattr(dedup, "_post_hashes", colliding)
    dropped, result = _filter(_cluster(tmp_path, posts))
    assert dropped == expected and result.reasons == {"duplicate: exact": 1, "duplicate: near": 1}
