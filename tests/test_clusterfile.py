"""Finding, scanning and reading cluster files without loading them."""

from __future__ import annotations

import gzip
import random

import orjson
import pytest

from instruct import clusterfile
from instruct.clusterfile import CHUNK_LINES, discover, read_chunks, read_lines, scan
from instruct.errors import InstructError


def write_lines(path, count, newline_at_end=True):
    lines = [orjson.dumps([{"user_id": f"u{i}", "text": f"post number {i} " + "x" * (i % 50)}]) for i in range(count)]
    data = b"\n".join(lines) + (b"\n" if newline_at_end else b"")
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return lines


def test_natural_order_whatever_the_listing(tmp_path):
    for name in ("cluster_10.jsonl", "cluster_2.jsonl", "cluster_1.jsonl", "other.txt"):
        (tmp_path / name).write_text("[]\n")
    assert [p.name for p in discover(tmp_path, "cluster_*.jsonl")] == [
        "cluster_1.jsonl", "cluster_2.jsonl", "cluster_10.jsonl"]


def test_missing_folder_and_empty_match_name_the_fix(tmp_path):
    with pytest.raises(InstructError, match="source.path"):
        discover(tmp_path / "nope", "cluster_*.jsonl")
    with pytest.raises(InstructError, match="source.pattern"):
        discover(tmp_path, "cluster_*.jsonl")


@pytest.mark.parametrize("name", ["cluster_0.jsonl", "cluster_0.jsonl.gz"])
@pytest.mark.parametrize("newline_at_end", [True, False])
def test_scan_counts_lines_and_reads_any_subset(tmp_path, name, newline_at_end):
    path = tmp_path / name
    lines = write_lines(path, 3 * CHUNK_LINES + 17, newline_at_end)
    cluster = scan(path)
    assert cluster.key == "cluster_0" and cluster.lines == len(lines)
    assert len(cluster.offsets) == 4 and cluster.truncated is None
    wanted = sorted(random.Random(1).sample(range(len(lines)), 300))
    got = [(n, raw.rstrip(b"\n")) for n, raw in read_lines(cluster, wanted)]
    assert got == [(n, lines[n]) for n in wanted]


def test_truncated_gzip_is_recorded_not_fatal(tmp_path):
    path = tmp_path / "cluster_0.jsonl.gz"
    write_lines(path, 2000)
    path.write_bytes(path.read_bytes()[:-200])
    cluster = scan(path)
    assert cluster.truncated and "gzip" in cluster.truncated
    assert 0 < cluster.lines < 2000


@pytest.mark.parametrize("name", ["cluster_0.jsonl", "cluster_0.jsonl.gz"])
@pytest.mark.parametrize("huge", [False, True])
def test_chunks_give_the_asked_lines_skipping_whole_chunks(tmp_path, monkeypatch, name, huge):
    if huge:  # every chunk counts as too large for one read: the line-by-line path
        monkeypatch.setattr(clusterfile, "_MAX_CHUNK_READ", 0)
    path = tmp_path / name
    lines = write_lines(path, 5 * CHUNK_LINES + 3, newline_at_end=False)
    cluster = scan(path)
    wanted = [0, 5, 6, 7, *range(2 * CHUNK_LINES, 3 * CHUNK_LINES), 4 * CHUNK_LINES + 9, len(lines) - 1]
    chunks = list(read_chunks(cluster, wanted))
    assert [chunk for chunk, _, _ in chunks] == [0, 2, 4, 5]
    assert [(n, raw) for _, numbers, raws in chunks for n, raw in zip(numbers, raws)] == [(n, lines[n]) for n in wanted]


def test_a_truncated_gzip_gives_the_lines_before_the_cut(tmp_path):
    path = tmp_path / "cluster_0.jsonl.gz"
    lines = write_lines(path, 3000)
    path.write_bytes(path.read_bytes()[:-200])
    cluster = scan(path)
    got = list(read_lines(cluster, range(cluster.lines)))
    assert 0 < len(got) < cluster.lines
    assert got == [(n, lines[n]) for n in range(len(got))]


@pytest.mark.parametrize("newline_at_end", [True, False])
def test_few_and_many_asked_lines_of_a_chunk_read_the_same(tmp_path, monkeypatch, newline_at_end):
    # A chunk with few lines asked for is indexed by its newlines, one with many is split: the same lines,
    # blank ones, CRLF endings and a last line without a newline included.
    path = tmp_path / "cluster_0.jsonl"
    rng = random.Random(3)
    lines = [rng.choice([b"", b"[]\r", b"\xc3\xa9" * rng.randrange(40), b'[{"user_id": "u", "text": "x"}]'])
             for _ in range(3 * CHUNK_LINES + 5)]
    path.write_bytes(b"\n".join(lines) + (b"\n" if newline_at_end else b""))
    cluster = scan(path)
    subsets = [sorted(rng.sample(range(len(lines)), k)) for k in (1, 40, 300, len(lines))]
    subsets.append([len(lines) - 1])
    for dense in (0, CHUNK_LINES + 1):  # every chunk split / every chunk indexed
        monkeypatch.setattr(clusterfile, "_DENSE", dense)
        for wanted in subsets:
            assert list(read_lines(cluster, wanted)) == [(n, lines[n]) for n in wanted]


@pytest.mark.parametrize("block", [1, 7, 4096, 1 << 20])
def test_chunk_offsets_whatever_the_read_block(tmp_path, monkeypatch, block):
    # The scan reads in blocks: a chunk's first line must be found where a block cuts a line, ends on its
    # newline, or holds several chunk boundaries at once.
    monkeypatch.setattr(clusterfile, "_BLOCK", block)
    path = tmp_path / "cluster_0.jsonl"
    lines = [b"x" * (n % 3) for n in range(4 * CHUNK_LINES + 1)]  # short and empty lines: many boundaries a block
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    cluster = scan(path)
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    assert cluster.offsets == starts[::CHUNK_LINES] and cluster.lines == len(lines)
