"""executor=ray: shards as Ray tasks write the same bytes as one local worker, survive a killed worker, fail in
one line after their retries (and resume=), refuse inputs a worker cannot see, feed the bar and name the node
of each shard in run.log.

One local Ray cluster (2 CPUs) serves the whole module. Its workers inherit KILL_MARKER_ENV, so a test arms
the kill of exactly one worker, mid-shard, by creating the marker file.
"""

from __future__ import annotations

import io
import logging
import os
import re

import pytest
import ray
from conftest import compose_config, data_files, manifest_of, run_pipeline
from test_scale import SAMPLE, write_cluster

import instruct.pipeline
from instruct.errors import InstructError
from instruct.pipeline import generate
from instruct.ray_executor import KILL_MARKER_ENV, RayExecutor
from instruct.worker import Setup

SHARDING = ("source.shard_lines=2048",)  # two chunks per shard, so a kill after the first is mid-shard


@pytest.fixture(scope="module")
def kill_marker(tmp_path_factory):
    marker = tmp_path_factory.mktemp("ray") / "kill-one-worker"
    os.environ[KILL_MARKER_ENV] = str(marker)  # before ray.init: the workers' environment is fixed there
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield marker
    ray.shutdown()
    del os.environ[KILL_MARKER_ENV]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three clusters of uneven size: five shards in all, every one several chunks long but one."""
    folder = tmp_path_factory.mktemp("ray_corpus") / "clusters"
    for cluster, lines in ((0, 2500), (1, 1100), (2, 2100)):
        write_cluster(folder, cluster, lines)
    return folder


def _overrides(folder, mix: str, validation: float) -> list[str]:
    return [f"source.path={folder}", f"dolly.path={SAMPLE / 'dolly.jsonl'}", "source.max_chains_per_cluster=null",
            f"tasks={mix}", f"split.validation_fraction={validation}", *SHARDING]


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory, corpus):
    """workers=1 runs by (mix, validation fraction), made once each."""
    runs = {}

    def reference(mix: str, validation: float):
        if (mix, validation) not in runs:
            out = tmp_path_factory.mktemp(f"local_{mix}")
            runs[mix, validation] = run_pipeline(out, *_overrides(corpus, mix, validation), "workers=1")
        return runs[mix, validation]

    return reference


def _same_run(run_dir, reference) -> None:
    ours, theirs = data_files(run_dir), data_files(reference)
    assert sorted(ours) == sorted(theirs)
    for path in theirs:
        assert ours[path] == theirs[path], f"{path} differs between executor=ray and workers=1"
    for key in ("counts", "inputs", "mix", "tasks"):
        assert manifest_of(run_dir)[key] == manifest_of(reference)[key], key


@pytest.mark.parametrize(("mix", "validation"), [("paper", 0.1), ("all", 0.1), ("persona", 0.1)])
def test_ray_writes_the_same_bytes_and_counts_as_one_local_worker(tmp_path, kill_marker, corpus, local_runs, mix,
                                                                   validation):
    """Every task mix, with a validation split (without one: the bar test)."""
    run_dir = run_pipeline(tmp_path, *_overrides(corpus, mix, validation), "executor=ray", "workers=2")
    reference = local_runs(mix, validation)
    _same_run(run_dir, reference)
    assert any(path.startswith("validation/") for path in data_files(run_dir))
    # run.log names the node of each of the five shards.
    node = ray.util.get_node_ip_address()
    shard_lines = re.findall(r"(cluster_\d) shard (\d): \d+ threads on node (\S+) ", (run_dir / "run.log").read_text())
    assert sorted((key, int(index)) for key, index, _ in shard_lines) == [
        ("cluster_0", 0), ("cluster_0", 1), ("cluster_1", 0), ("cluster_2", 0), ("cluster_2", 1)]
    assert {where for _, _, where in shard_lines} == {node}


def test_a_worker_killed_mid_shard_is_retried_and_writes_the_same_bytes(tmp_path, kill_marker, corpus, local_runs):
    kill_marker.write_bytes(b"")  # the first worker to finish a chunk kills itself
    run_dir = run_pipeline(tmp_path, *_overrides(corpus, "paper", 0.1), "executor=ray", "workers=2")
    assert not kill_marker.exists(), "no worker was killed"
    _same_run(run_dir, local_runs("paper", 0.1))
    assert not list(run_dir.glob("**/.attempt-*")), "the killed attempt's folder outlived the run"


def test_a_shard_lost_after_its_retries_fails_in_one_line_and_resume_finishes_it(tmp_path, kill_marker, corpus,
                                                                                 local_runs):
    kill_marker.write_bytes(b"")
    overrides = ["progress=false", *_overrides(corpus, "paper", 0.1), "executor=ray", "workers=2"]
    with pytest.raises(InstructError) as failure:
        generate(compose_config(*overrides, "executor.max_retries=0"), tmp_path / "out")
    message = str(failure.value)
    assert "\n" not in message and "was lost after 0 retries" in message
    run_dir = tmp_path / "out" / re.search(r"resume=(\S+)", message).group(1).split("/out/")[-1]
    assert run_dir.is_dir() and not (run_dir / "manifest.json").exists()
    # What run.py does with resume=RUN_DIR: the run's own config, this command's executor.
    resumed = generate(compose_config(*overrides), run_dir.parent, resume_dir=run_dir)
    assert resumed == run_dir
    _same_run(run_dir, local_runs("paper", 0.1))


def test_inputs_a_worker_cannot_see_fail_at_start_with_the_file_named(tmp_path, kill_marker, corpus, monkeypatch):
    # A relative source.path the driver resolves from another folder than the workers do: exactly what a node
    # without the shared storage sees.
    monkeypatch.chdir(corpus.parent)
    with pytest.raises(InstructError, match=r"node \S+ .*cannot read clusters/cluster_0\.jsonl .*storage every node "
                                            r"sees"):
        run_pipeline(tmp_path, *_overrides("clusters", "paper", 0.0), "executor=ray")
    assert not (tmp_path / "out").exists(), "the run started before the check"


def test_the_bar_counts_the_threads_of_every_ray_task(tmp_path, kill_marker, corpus, local_runs, monkeypatch):
    """Without a validation split, too: the same bytes, and a bar that moved while the tasks ran."""
    seen: list[int] = []
    real_tqdm = instruct.pipeline.tqdm

    class RecordingBar(real_tqdm):
        def __init__(self, *args, **kwargs):  # shown, as on a terminal
            super().__init__(*args, **{**kwargs, "disable": False, "file": io.StringIO()})

        def update(self, n=1):
            super().update(n)
            seen.append(self.n)

    monkeypatch.setattr(instruct.pipeline, "tqdm", RecordingBar)
    run_dir = run_pipeline(tmp_path, *_overrides(corpus, "paper", 0.0), "executor=ray", "workers=2")
    _same_run(run_dir, local_runs("paper", 0.0))
    assert not any(path.startswith("validation/") for path in data_files(run_dir))
    counts = manifest_of(run_dir)["counts"]
    assert seen[-1] == counts["threads_used"] + counts["rejected"]  # every line parsed (dedup removed some before)
    assert counts["threads_used"] + counts["rejected"] + counts["filtered"] == 2500 + 1100 + 2100
    assert any(0 < n < seen[-1] for n in seen), "the bar only moved at the end"


def test_a_local_pool_beside_a_ray_connection_writes_the_same_bytes(tmp_path, kill_marker, corpus, local_runs):
    """Ray's threads live in this process: the local pool must not fork them (it starts from a forkserver)."""
    assert ray.is_initialized()
    run_dir = run_pipeline(tmp_path, *_overrides(corpus, "paper", 0.1), "workers=2")
    _same_run(run_dir, local_runs("paper", 0.1))


def test_a_run_folder_the_workers_do_not_see_fails_with_the_folder_named(tmp_path, kill_marker, corpus):
    """What a driver-local output_root looks like from a node: the driver's probe file is not there."""
    cfg = compose_config("progress=false", *_overrides(corpus, "paper", 0.0), "executor=ray")
    setup = Setup(seed=1, tasks=[], encoder=None, validation_fraction=0.0, parts_dir=tmp_path / "run" / "parts")
    executor = RayExecutor(setup, 2, cfg.executor, sorted(corpus.glob("*.jsonl")))
    with executor, pytest.raises(InstructError, match=r"node \S+ .*cannot see the run folder .*storage every node sees"):
        executor._check_nodes(tmp_path / "run" / "parts" / ".visible-never-written")
