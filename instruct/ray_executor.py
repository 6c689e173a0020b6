"""executor=ray: every scan and every shard is a Ray task on an existing cluster (or one started in this
process with ``executor.address=local``). The driver keeps everything else: the plan, the assembly of part
files, the Dolly mix, the manifest and the card, so the input and output folders must be on storage every
node sees. Ray is imported only here, and only when executor=ray is chosen.

A shard task writes its part files into a folder of its own attempt and renames them into place when it is
done, so a worker killed mid-shard leaves no half-written part file behind, and the retry Ray starts writes
the same bytes (a shard's output depends only on its lines and the seed).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import signal
import socket
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from instruct import __version__
from instruct.counts import Counts
from instruct.errors import InstructError
from instruct.plan import Shard
from instruct.worker import Setup, run_shard

log = logging.getLogger("instruct")

# Tests only: a worker that finds this file (named by the variable) deletes it and kills itself mid-shard, so
# a test can kill exactly one Ray worker process at a known point. Unset in normal runs.
KILL_MARKER_ENV = "INSTRUCT_TEST_KILL_MARKER"
_CHECK_TIMEOUT_SECONDS = 120  # a node check that is not scheduled by then: the cluster lacks the resources
_POLL_SECONDS = 0.2
_SETUPS: dict[str, Setup] = {}  # a worker process's copy of the run's setup, by object id (tasks reuse workers)
_STORAGE_HINT = ("the input and output folders must be on storage every node sees (NFS, Lustre, GPFS …) under the "
                 "same absolute path; see README.md, 'On a cluster'")


def import_ray():
    try:
        import ray
    except ImportError:
        raise InstructError("executor=ray needs Ray, which is not installed: pip install 'instruct[ray]' "
                            "(or use executor=local)") from None
    return ray


def _no_progress(n: int) -> None:
    pass


def _where() -> str:
    import ray

    return f"{ray.util.get_node_ip_address()} ({socket.gethostname()})"


class _Progress:
    """Threads done per shard, summed for the driver's bar; a retried shard starts counting again."""

    def __init__(self):
        self.done: dict[str, list] = {}

    def start(self, shard_id: str, attempt: str) -> None:
        self.done[shard_id] = [attempt, 0]

    def add(self, shard_id: str, attempt: str, threads: int) -> None:
        if self.done.get(shard_id, [None])[0] == attempt:  # a late report of a killed attempt is dropped
            self.done[shard_id][1] += threads

    def total(self) -> int:
        return sum(threads for _, threads in self.done.values())


def _kill_hook():
    marker = os.environ.get(KILL_MARKER_ENV)
    if not marker:
        return _no_progress

    def kill_once(n: int) -> None:
        try:
            os.unlink(marker)  # only one attempt of one worker can claim it
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    return kill_once


def _setup_of(ref) -> Setup:
    import ray

    key = ref.hex()
    if key not in _SETUPS:
        _SETUPS.clear()  # one run's setup at a time
        _SETUPS[key] = ray.get(ref)
    return _SETUPS[key]


def _shard_task(shard: Shard, setup_ref: list, progress, shard_id: str) -> tuple[str, int, Counts, str, float]:
    """One shard on a worker; ``setup_ref`` is wrapped in a list so Ray hands over the reference, and the setup
    is deserialized once per worker process, not once per shard."""
    started = time.perf_counter()
    setup = _setup_of(setup_ref[0])
    attempt = uuid.uuid4().hex
    progress.start.remote(shard_id, attempt)
    kill = _kill_hook()

    def report(threads: int) -> None:
        progress.add.remote(shard_id, attempt, threads)
        kill(threads)

    attempt_dir = setup.parts_dir / f".attempt-{shard_id}-{attempt}"
    attempt_dir.mkdir()
    counts = run_shard(shard, dataclasses.replace(setup, parts_dir=attempt_dir, progress=report))
    for part in sorted(attempt_dir.iterdir()):
        os.replace(part, setup.parts_dir / part.name)
    attempt_dir.rmdir()
    return shard.cluster.key, shard.index, counts, _where(), time.perf_counter() - started


def _check_node(inputs: list[tuple[str, int]], probe: str | None) -> dict:
    """What one node sees: which inputs it cannot read (as the driver gave their paths, with the driver's
    sizes), its instruct version, and whether it sees the driver's probe file in the output folder (then it
    writes one back, which the driver looks for)."""
    missing = [path for path, size in inputs if not os.path.isfile(path) or os.path.getsize(path) != size]
    seen = None
    if probe is not None:
        seen = os.path.isfile(probe)
        if seen:
            Path(f"{probe}.{uuid.uuid4().hex}").write_bytes(b"")
    return {"where": _where(), "cwd": os.getcwd(), "version": __version__, "missing": missing, "probe_seen": seen}


class RayExecutor:
    """Runs scans and shards as Ray tasks, at most ``workers`` at once, each with ``num_cpus`` CPUs.

    Args:
        setup: what every shard shares; put in Ray's object store once per run.
        workers: the cap on tasks in flight.
        config: the ``executor`` config (address, num_cpus, max_retries).
        inputs: the cluster files; every node must see them, which is checked on entry.
    """

    def __init__(self, setup: Setup, workers: int, config, inputs: list[Path]):
        self.setup = setup
        self.workers = workers
        self.address = config.address
        self.num_cpus = float(config.num_cpus)
        self.max_retries = int(config.max_retries)
        self.inputs = inputs
        self.ray = import_ray()
        self.started_ray = False

    # --- connection --------------------------------------------------------------------------------------

    def __enter__(self) -> "RayExecutor":
        ray = self.ray
        if ray.is_initialized():  # a connection this process already has (a notebook, the tests)
            log.info("executor=ray: using this process's Ray connection")
        else:
            try:
                if self.address == "local":
                    ray.init(num_cpus=max(1, round(self.workers * self.num_cpus)), include_dashboard=False,
                             logging_level=logging.WARNING)
                else:
                    ray.init(address=self.address, logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise InstructError(f"executor.address={self.address}: cannot connect to a Ray cluster ({exc}); "
                                    f"start one with `ray start --head`, or use executor.address=local for one in "
                                    f"this process") from None
            self.started_ray = True
        try:
            self._check_nodes(probe=None)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False

    def _nodes(self) -> list[dict]:
        nodes = [node for node in self.ray.nodes()
                 if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) >= self.num_cpus]
        if not nodes:
            raise InstructError(f"executor.num_cpus={self.num_cpus:g}: no live node of the Ray cluster has that "
                                f"many CPUs")
        return nodes

    def _check_nodes(self, probe: Path | None) -> None:
        """One tiny task pinned to every node that can run a shard: it must see the inputs (and the output
        folder, when ``probe`` is given) as the driver does."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        check = self.ray.remote(_check_node)
        inputs = [(str(path), path.stat().st_size) for path in self.inputs]
        pinned = [NodeAffinitySchedulingStrategy(node["NodeID"], soft=False) for node in self._nodes()]
        refs = [check.options(num_cpus=0, scheduling_strategy=strategy).remote(inputs, str(probe) if probe else None)
                for strategy in pinned]
        try:
            reports = self.ray.get(refs, timeout=_CHECK_TIMEOUT_SECONDS)
        except self.ray.exceptions.GetTimeoutError:
            raise InstructError(f"executor=ray: the node check was not scheduled within {_CHECK_TIMEOUT_SECONDS} s "
                                f"(is the cluster busy or short of resources?)") from None
        except self.ray.exceptions.RayError as exc:  # e.g. instruct cannot be imported on a node
            raise InstructError(f"executor=ray: a node cannot run instruct ({_first_line(exc)}); install the same "
                                f"instruct {__version__} on every node") from None
        for report in reports:
            if report["version"] != __version__:
                raise InstructError(f"executor=ray: node {report['where']} has instruct {report['version']}, this "
                                    f"process {__version__}: install the same version on every node")
            if report["missing"]:
                raise InstructError(f"executor=ray: node {report['where']} cannot read {report['missing'][0]} "
                                    f"({len(report['missing'])} of {len(inputs)} input files; its working directory "
                                    f"is {report['cwd']}): {_STORAGE_HINT}")
            if report["probe_seen"] is False:
                raise InstructError(f"executor=ray: node {report['where']} cannot see the run folder "
                                    f"{probe.parent.parent}: {_STORAGE_HINT}")
        if probe is not None:
            answers = list(probe.parent.glob(glob.escape(probe.name) + ".*"))
            if len(answers) < len(reports):
                raise InstructError(f"executor=ray: a node wrote into the run folder {probe.parent.parent} but this "
                                    f"process does not see it: {_STORAGE_HINT}")

    # --- work --------------------------------------------------------------------------------------------

    def _in_flight(self, calls: list, on_result) -> None:
        """Submit ``calls`` (thunks returning an ObjectRef) in order, keeping at most ``workers`` unfinished;
        call ``on_result(position, ref)`` as each finishes, and ``on_result(None, None)`` every poll."""
        ray = self.ray
        pending: dict = {}
        waiting = list(enumerate(calls))[::-1]
        try:
            while waiting or pending:
                while waiting and len(pending) < self.workers:
                    position, call = waiting.pop()
                    pending[call()] = position
                done, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_SECONDS)
                on_result(None, None)
                for ref in done:
                    on_result(pending.pop(ref), ref)
        except BaseException:  # a failed run leaves no task behind on a cluster that outlives it
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def map(self, function, items: list) -> list:
        remote = self.ray.remote(function).options(num_cpus=self.num_cpus, max_retries=self.max_retries)
        results: list = [None] * len(items)

        def keep(position, ref):
            if position is not None:
                results[position] = self._result(ref, f"{function.__name__}({items[position]})",
                                                 "nothing was written; run it again")

        self._in_flight([lambda item=item: remote.remote(item) for item in items], keep)
        return results

    def _result(self, ref, what: str, then: str):
        """The task's value; its own error is raised as with executor=local, a lost worker as one line."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the function raised, e.g. an unreadable file
            if isinstance(exc.cause, (InstructError, OSError)):
                raise exc.cause from None
            raise
        except ray.exceptions.RayError as exc:  # its worker or node died more often than max_retries
            raise InstructError(f"executor=ray: {what} was lost after {self.max_retries} retries ({_first_line(exc)}); "
                                f"{then}") from None

    def run(self, shards: list[Shard], on_done, bar: tqdm) -> None:
        """Run every shard as a Ray task; call ``on_done(key, index, counts)`` in this process as each one
        finishes, and log the node it ran on."""
        ray = self.ray
        parts_dir = self.setup.parts_dir.resolve()  # workers do not share this process's working directory
        parts_dir.mkdir(exist_ok=True)
        probe = parts_dir / f".visible-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        self._check_nodes(probe)
        for path in parts_dir.glob(glob.escape(probe.name) + "*"):
            path.unlink()
        setup_ref = ray.put(dataclasses.replace(self.setup, parts_dir=parts_dir, progress=_no_progress,
                                                responder=None))
        progress = ray.remote(_Progress).options(num_cpus=0).remote()
        task = ray.remote(_shard_task).options(num_cpus=self.num_cpus, max_retries=self.max_retries,
                                               retry_exceptions=False)
        ids = [f"{shard.cluster.key}.{shard.index:05d}" for shard in shards]
        last_poll = [0.0]

        def finished(position, value):
            if time.monotonic() - last_poll[0] >= _POLL_SECONDS:
                bar.update(ray.get(progress.total.remote()) - bar.n)
                last_poll[0] = time.monotonic()
            if position is None:
                return
            shard = shards[position]
            resume = f"finish the run with resume={parts_dir.parent} executor=ray"
            key, index, counts, where, seconds = self._result(value, f"shard {shard.index} of {shard.cluster.path}",
                                                              resume)
            log.info("%s shard %d: %d threads on node %s in %.1f s", key, index, len(shard.lines), where, seconds)
            on_done(key, index, counts)

        try:
            self._in_flight([lambda shard=shard, shard_id=shard_id: task.remote(shard, [setup_ref], progress, shard_id)
                             for shard, shard_id in zip(shards, ids)], finished)
            bar.update(ray.get(progress.total.remote()) - bar.n)
        finally:
            ray.kill(progress)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
