"""The same config on the same inputs gives byte-identical data files: on a rerun, whatever order the file
system lists the cluster files in, and whatever PYTHONHASHSEED the interpreter was started with."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, data_files, manifest_of, run_pipeline
from test_reliability import run_dirs, write_clusters

ARGS = ("split.validation_fraction=0.2", "source.max_chains_per_cluster=700")


@pytest.fixture(scope="module")
def clusters(tmp_path_factory) -> Path:
    folder = write_clusters(tmp_path_factory.mktemp("repro") / "in", clusters=3, lines=900, bad_every=150)
    # Names the natural sort cannot tell apart (both sort as cluster_1): only the name itself decides.
    lines = (folder / "cluster_1.jsonl").read_bytes().splitlines()
    (folder / "cluster_01.jsonl").write_bytes(b"\n".join(reversed(lines)) + b"\n")
    return folder


def test_a_rerun_writes_the_same_bytes(tmp_path, clusters):
    first = run_pipeline(tmp_path / "a", f"source.path={clusters}", *ARGS)
    second = run_pipeline(tmp_path / "b", f"source.path={clusters}", *ARGS)
    assert data_files(first) == data_files(second)
    assert manifest_of(first)["version_id"] == manifest_of(second)["version_id"]
    assert len(data_files(first)) == 2 * 4 + 1  # train + validation per cluster, and the rejects


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_the_file_listing_order_does_not_matter(tmp_path, clusters, monkeypatch, order):
    baseline = run_pipeline(tmp_path / "a", f"source.path={clusters}", *ARGS)
    real_glob = Path.glob
    listed = []

    def scrambled_glob(self, pattern):
        found = list(real_glob(self, pattern))
        found = found[::-1] if order == "reversed" else random.Random(3).sample(found, len(found))
        if pattern == "cluster_*.jsonl":
            listed.append([p.name for p in found])
        return iter(found)

    monkeypatch.setattr(Path, "glob", scrambled_glob)
    scrambled = run_pipeline(tmp_path / "b", f"source.path={clusters}", *ARGS)
    assert listed and listed[0] != sorted(listed[0])  # the scrambled listing really was used
    assert data_files(scrambled) == data_files(baseline)
    assert [c["cluster"] for c in manifest_of(scrambled)["inputs"]["clusters"]] == \
        ["cluster_0", "cluster_01", "cluster_1", "cluster_2"]


def test_pythonhashseed_does_not_matter(tmp_path, clusters):
    """Two interpreters with different string hashing (set iteration order) and worker pools."""
    outputs = []
    for seed in ("0", "12345"):
        out = tmp_path / seed
        result = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "progress=false", f"source.path={clusters}", f"output_root={out}",
             "workers=2", *ARGS],
            cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
        [run_dir] = run_dirs(out)
        outputs.append(data_files(run_dir))
    assert outputs[0] == outputs[1]
