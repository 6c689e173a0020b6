"""Where shards run: in this process (workers=1) or in a fork pool, with a progress bar fed by a shared
counter (executor=local), or as Ray tasks (executor=ray, instruct/ray_executor.py). A shard never knows
which; the data files are the same either way."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
import sys
from pathlib import Path

from tqdm import tqdm

from instruct.counts import Counts
from instruct.plan import Shard
from instruct.worker import Setup, run_shard

_SETUP: Setup | None = None  # a pool worker's copy, inherited through fork
_PROGRESS = None             # a shared counter of threads done, for the progress bar


def _count_progress(n: int) -> None:
    with _PROGRESS.get_lock():
        _PROGRESS.value += n


def _no_progress(n: int) -> None:
    pass


def _adopt(setup: Setup, progress) -> None:
    """A pool worker's start (forkserver only; a forked one inherits both)."""
    global _SETUP, _PROGRESS
    _SETUP, _PROGRESS = setup, progress


def _ray_is_running_here() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _run_in_worker(shard: Shard, parts_dir: Path) -> tuple[str, int, Counts]:
    _SETUP.progress = _count_progress
    _SETUP.parts_dir = parts_dir
    return shard.cluster.key, shard.index, run_shard(shard, _SETUP)


class Executor:
    """Runs functions and shards in this process (workers=1) or in a fork pool of ``workers`` processes.

    Pool workers inherit the bound tasks and templates through fork, so nothing is rebuilt per shard.
    """

    def __init__(self, setup: Setup, workers: int):
        self.setup = setup
        self.workers = workers
        self.pool = None

    def __enter__(self) -> "Executor":
        global _SETUP, _PROGRESS
        if self.workers > 1 and _ray_is_running_here():
            # A fork copies only the forking thread: a lock one of Ray's driver threads (gRPC) holds at that
            # moment stays held in the child for good. Start the workers from a clean forkserver instead, and
            # hand them the setup by pickle.
            context = mp.get_context("forkserver")
            _PROGRESS = context.Value("q", 0)
            shipped = dataclasses.replace(self.setup, progress=_no_progress, responder=None)
            self.pool = context.Pool(self.workers, initializer=_adopt, initargs=(shipped, _PROGRESS))
        elif self.workers > 1:
            context = mp.get_context("fork")
            _SETUP, _PROGRESS = self.setup, context.Value("q", 0)
            self.pool = context.Pool(self.workers)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate() if exc[0] else self.pool.close()
            self.pool.join()

    def map(self, function, items: list) -> list:
        # One item a job: the items are whole cluster files (a scan, a filter pass), few and of uneven size, so
        # Pool.map's default batches (25 files on 2 workers: 4 a batch) could leave one worker the largest
        # files while the other idles; a job's own cost (one pickle each way) is small beside a file's pass.
        return self.pool.map(function, items, chunksize=1) if self.pool else [function(item) for item in items]

    def run(self, shards: list[Shard], on_done, bar: tqdm) -> None:
        """Run every shard; call ``on_done(key, index, counts)`` in this process as each one finishes."""
        if self.pool is None:
            self.setup.progress = bar.update
            for shard in shards:
                on_done(shard.cluster.key, shard.index, run_shard(shard, self.setup))
            return
        done: queue.Queue = queue.Queue()
        self.setup.parts_dir.mkdir(exist_ok=True)
        for shard in shards:
            self.pool.apply_async(_run_in_worker, (shard, self.setup.parts_dir), callback=done.put,
                                  error_callback=done.put)
        for _ in shards:
            while True:
                try:
                    result = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    bar.update(_PROGRESS.value - bar.n)
            if isinstance(result, BaseException):
                raise result
            on_done(*result)
        bar.update(_PROGRESS.value - bar.n)


def make_executor(cfg, setup: Setup, inputs: list[Path]):
    """The executor ``cfg.executor`` names, for ``cfg.workers`` shards at once; Ray is imported only for
    executor=ray. ``inputs`` are the cluster files, which a Ray executor checks every node can read."""
    if cfg.executor.name == "ray":
        from instruct.ray_executor import RayExecutor

        return RayExecutor(setup, cfg.workers, cfg.executor, inputs)
    return Executor(setup, cfg.workers)
