"""The whole run in one place: inputs → plan → shards (in parallel) → per-cluster files → manifest.

``generate(cfg, parent)`` is what ``run.py`` calls and what tests call with a composed config and a
temporary parent folder; it never looks at the working directory or at Hydra's globals.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import logging
import multiprocessing as mp
import os
import queue
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from instruct import __version__
from instruct.card import write_card
from instruct.clusterfile import ClusterFile, discover, scan
from instruct.counts import Counts
from instruct.dolly import DollySource, dolly_row
from instruct.errors import InstructError
from instruct.formats import RecordEncoder
from instruct.manifest import build_manifest
from instruct.plan import Shard, plan_shards, select_lines
from instruct.responders import finish_responder, make_responder
from instruct.responders.pending import resolve_pending
from instruct.rundir import MANIFEST, PARTS, STATE, atomic_open, create_run_dir, is_complete, version_id, write_json
from instruct.schema import check, versioned_config
from instruct.seeding import DOLLY, rng_for, unit_interval
from instruct.tasks.base import Task
from instruct.templates import TemplateSet
from instruct.worker import TRAIN, VALIDATION, Setup, part_path, run_shard

log = logging.getLogger("instruct")


@dataclass
class RunInfo:
    """What the caller knows about how the run was launched (Hydra fills it in; tests may leave it empty).

    Args:
        overrides: the command-line overrides.
        choices: the config group options chosen.
        job_num: the job's number in a sweep.
        hydra_config: Hydra's own config, saved as .hydra/hydra.yaml.
    """

    overrides: list[str] = field(default_factory=list)
    choices: dict = field(default_factory=dict)
    job_num: int | None = None
    hydra_config: DictConfig | None = None


def build_tasks(tasks_cfg: DictConfig, templates: TemplateSet) -> list[Task]:
    """Instantiate every task of the mix (weight > 0) and lint its templates."""
    tasks = []
    for name, node in tasks_cfg.items():
        try:
            task = instantiate(node)
        except InstantiationException as exc:
            raise InstructError(f"tasks.{name}: {exc.__cause__ or exc}") from None
        if not isinstance(task, Task):
            raise InstructError(f"tasks.{name}: {node._target_} is not a Task")
        if task.weight > 0:
            tasks.append(task.bind(str(name), templates))
    return tasks


def generate(cfg: DictConfig, parent: Path, info: RunInfo | None = None, resume_dir: Path | None = None) -> Path:
    """Run the whole pipeline for ``cfg``; write a new versioned folder under ``parent`` (or finish
    ``resume_dir``) and return its path."""
    info = info or RunInfo()
    started = time.time()
    check(cfg)
    templates = TemplateSet(cfg.templates.set, cfg.templates.dir)
    tasks = build_tasks(cfg.tasks, templates)
    files = discover(cfg.source.path, cfg.source.pattern)
    dolly = None
    if cfg.mix.dolly_fraction > 0:
        if not cfg.dolly.path:
            raise InstructError("mix.dolly_fraction > 0 but dolly.path is not set (set dolly.path=…, or mix=none)")
        dolly = DollySource.load(cfg.dolly.path)

    setup = Setup(seed=cfg.seed, tasks=tasks, encoder=RecordEncoder(cfg.output.format),
                  validation_fraction=cfg.split.validation_fraction, parts_dir=Path())
    # Before the run folder exists, so an unreachable endpoint fails fast and leaves nothing behind.
    setup.responder = make_responder(cfg.responder, [task.name for task in tasks])
    setup.deferred_tasks = setup.responder.tasks if setup.responder else frozenset()
    for task in tasks:
        task.llm_answers = task.name in setup.deferred_tasks
    with Executor(setup, cfg.workers) as executor:
        clusters = executor.map(scan, files)
        identity = {
            "config": versioned_config(cfg),
            "inputs": [[c.key, c.sha256] for c in clusters],
            "dolly": dolly.sha256 if dolly else None,
            "instruct": __version__,
            # Task parameters as instantiated, label-file hashes included: inputs beyond the threads.
            "tasks": {task.name: task.describe() for task in tasks},
        }
        version = version_id(identity)
        run_dir = _open_run_dir(parent, version, resume_dir, identity)
        setup.parts_dir = run_dir / PARTS
        _save_config(run_dir, cfg, info)
        if not (run_dir / STATE / IDENTITY).exists():  # what a resume is compared with, to say what changed
            write_json(run_dir / STATE / IDENTITY, identity)
        handler = _log_to(run_dir / "run.log")
        try:
            for task in tasks:
                status = task.describe().get("status")
                if status:
                    log.log(logging.WARNING if "not applicable" in status else logging.INFO, "%s: %s", task.name, status)
            for cluster in clusters:
                if cluster.truncated:
                    log.warning("%s: %s; the %d lines before it are used", cluster.path, cluster.truncated, cluster.lines - 1)
            results = _run_clusters(cfg, setup, executor, clusters, dolly, run_dir)
            manifest = build_manifest(cfg=cfg, info=info, tasks=tasks, clusters=clusters, results=results,
                                      dolly=dolly, run_dir=run_dir, version=version, started=started)
            manifest["responder"] = finish_responder(setup.responder, run_dir, [c.key for c in clusters])
            manifest["pending"] = manifest["responder"]["pending"]  # rows waiting for a Batch answer
            _write_rejects(run_dir, clusters, dolly)
            write_card(run_dir, manifest)
            shutil.rmtree(run_dir / PARTS, ignore_errors=True)  # before the manifest: a complete folder has none
            write_json(run_dir / MANIFEST, manifest)  # last: its presence says the folder is complete
            shutil.rmtree(run_dir / STATE, ignore_errors=True)
        except OSError as exc:  # a part file, a folder, a log line: the disk filled up or went read-only
            where = f" ({exc.filename})" if exc.filename else ""
            raise InstructError(f"cannot write in {run_dir}{where}: {exc.strerror or exc} (disk full or not "
                                f"writable?); once fixed, finish it with resume={run_dir}") from None
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    total = manifest["counts"]
    log.info("wrote %d rows (%d generated, %d Dolly) to %s", total["rows"], total["generated"], total["dolly"], run_dir)
    return run_dir


IDENTITY = "identity.json"  # in .state/: what the version id of an unfinished run was computed from


def _open_run_dir(parent: Path, version: str, resume_dir: Path | None, identity: dict) -> Path:
    if resume_dir is None:
        return create_run_dir(parent, version)
    if is_complete(resume_dir):
        raise InstructError(f"{resume_dir} is already complete; nothing to resume")
    if not resume_dir.name.endswith(f"_{version}"):
        raise InstructError(f"cannot resume {resume_dir}: {_what_changed(resume_dir, identity)} changed since it "
                            f"started (this run's version id is {version}); start a new run instead")
    log.info("resuming %s", resume_dir)
    return resume_dir


def _what_changed(run_dir: Path, identity: dict) -> str:
    """Name what differs between an unfinished run and this one: the config, which input files, the code."""
    try:
        before = orjson.loads((run_dir / STATE / IDENTITY).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return "its inputs, config or instruct version"
    now = orjson.loads(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS))
    changed = []
    if before.get("config") != now["config"]:
        keys = sorted(k for k in set(before.get("config", {})) | set(now["config"])
                      if before.get("config", {}).get(k) != now["config"].get(k))
        changed.append(f"the config ({', '.join(keys)})")
    if before.get("inputs") != now["inputs"]:
        old, new = dict(map(tuple, before.get("inputs", []))), dict(map(tuple, now["inputs"]))
        files = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        changed.append(f"the input files ({', '.join(files)})")
    if before.get("dolly") != now["dolly"]:
        changed.append("the Dolly file")
    if before.get("tasks") != now["tasks"]:
        changed.append("the task settings or label files")
    if before.get("instruct") != now["instruct"]:
        changed.append(f"the instruct version ({before.get('instruct')} -> {now['instruct']})")
    return " and ".join(changed) or "its identity"


def _save_config(run_dir: Path, cfg: DictConfig, info: RunInfo) -> None:
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    if not (hydra_dir / "config.yaml").exists():  # a resumed run keeps what it was started with
        with atomic_open(hydra_dir / "config.yaml") as handle:
            handle.write(OmegaConf.to_yaml(cfg).encode())
        with atomic_open(hydra_dir / "overrides.yaml") as handle:
            handle.write(OmegaConf.to_yaml(OmegaConf.create(list(info.overrides))).encode())
        if info.hydra_config is not None:
            with atomic_open(hydra_dir / "hydra.yaml") as handle:
                handle.write(OmegaConf.to_yaml(OmegaConf.create({"hydra": info.hydra_config})).encode())
    (run_dir / STATE).mkdir(exist_ok=True)
    (run_dir / PARTS).mkdir(exist_ok=True)


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO or logging.getLogger().level == logging.NOTSET:
        logging.getLogger().setLevel(logging.INFO)
    return handler


# --- running shards ----------------------------------------------------------------------------------------

_SETUP: Setup | None = None  # a pool worker's copy, inherited through fork
_PROGRESS = None             # a shared counter of threads done, for the progress bar


def _count_progress(n: int) -> None:
    with _PROGRESS.get_lock():
        _PROGRESS.value += n


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
        if self.workers > 1:
            context = mp.get_context("fork")
            _SETUP, _PROGRESS = self.setup, context.Value("q", 0)
            self.pool = context.Pool(self.workers)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate() if exc[0] else self.pool.close()
            self.pool.join()

    def map(self, function, items: list) -> list:
        return self.pool.map(function, items) if self.pool else [function(item) for item in items]

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


@dataclass
class ClusterResult:
    """Args:
        counts: everything its shards counted.
        outputs: relative output path → {rows, generated, dolly, sha256}.
    """

    counts: Counts
    outputs: dict


def _run_clusters(cfg, setup: Setup, executor: Executor, clusters: list[ClusterFile], dolly: DollySource | None,
                  run_dir: Path) -> dict[str, ClusterResult]:
    results: dict[str, ClusterResult] = {}
    plans: dict[str, list[Shard]] = {}
    for cluster in clusters:
        state = run_dir / STATE / f"{cluster.key}.json"
        if state.exists():  # finished before an interruption
            data = orjson.loads(state.read_bytes())
            results[cluster.key] = ClusterResult(Counts.from_dict(data["counts"]), data["outputs"])
            continue
        for leftover in (run_dir / PARTS).glob(f"{glob.escape(cluster.key)}.*"):  # a file may be named cluster_*.jsonl
            leftover.unlink()
        selected = select_lines(cluster, cfg.source.max_chains_per_cluster, cfg.seed)
        plans[cluster.key] = plan_shards(cluster, selected, shard_lines=cfg.source.shard_lines,
                                         lookback=setup.lookback, stats_threads=cfg.source.stats_threads)
    by_key = {cluster.key: cluster for cluster in clusters}
    finished: dict[str, dict[int, Counts]] = {key: {} for key in plans}
    dolly_pools = _dolly_pools(dolly, cfg.seed, cfg.split.validation_fraction)

    def on_done(key: str, index: int, counts: Counts) -> None:
        finished[key][index] = counts
        if len(finished[key]) == len(plans[key]):
            total = Counts()
            for shard_index in sorted(finished[key]):
                total.add(finished[key][shard_index])
            results[key] = _finish_cluster(cfg, setup, by_key[key], len(plans[key]), total, dolly_pools, run_dir)

    shards = [shard for key in plans for shard in plans[key]]
    total_threads = sum(len(shard.lines) for shard in shards)
    with tqdm(total=total_threads, unit="thread", disable=None if cfg.progress else True, dynamic_ncols=True) as bar:
        executor.run(shards, on_done, bar)
    # Checked once every cluster is done (finished clusters of a resumed run included), so the one message
    # names the worst file whatever order the clusters finished in, and a resume cannot skip the check.
    _check_rejects(cfg, clusters, results, run_dir)
    return {cluster.key: results[cluster.key] for cluster in clusters}


def _dolly_pools(dolly: DollySource | None, seed: int, validation_fraction: float) -> dict[str, list]:
    """Dolly rows by split; a Dolly row is put on one side of the split by a stable hash of its line."""
    pools: dict[str, list] = {TRAIN: [], VALIDATION: []}
    for row in dolly.rows if dolly else []:
        side = VALIDATION if unit_interval(seed, f"dolly:{row.line}") < validation_fraction else TRAIN
        pools[side].append(row)
    return pools


def _finish_cluster(cfg, setup: Setup, cluster: ClusterFile, shard_count: int, counts: Counts, dolly_pools,
                    run_dir: Path) -> ClusterResult:
    """Concatenate the shards' part files into the cluster's output file(s), with Dolly rows mixed in at
    random positions, then record the cluster as finished."""
    fraction = cfg.mix.dolly_fraction
    splits = [TRAIN, VALIDATION] if cfg.split.validation_fraction > 0 else [TRAIN]
    outputs = {}
    # LLM answers first: rows without one leave `counts`, so the Dolly share is of the rows really written.
    resolved = resolve_pending(setup.responder, setup.encoder, cluster.key, str(cluster.path),
                               {split: [part_path(setup.parts_dir, cluster.key, i, split + ".pending")
                                        for i in range(shard_count)] for split in splits}, counts, run_dir)
    for split_index, split in enumerate(splits):
        generated = counts.rows[split]
        rng = rng_for(cfg.seed, cluster.key, DOLLY, split_index)
        wanted = round(generated * fraction / (1 - fraction)) if fraction > 0 else 0
        pool = dolly_pools[split]
        picked = [pool[i] for i in rng.choice(len(pool), size=min(wanted, len(pool)), replace=False)] if pool else []
        if wanted > len(picked):
            log.warning("%s/%s: wanted %d Dolly rows, the Dolly file has %d for this split", split, cluster.key,
                        wanted, len(pool))
        total = generated + len(picked)
        at = set(rng.choice(total, size=len(picked), replace=False).tolist()) if picked else set()
        dolly_lines = iter(picked)
        folder = run_dir / split
        folder.mkdir(exist_ok=True)
        target = folder / f"{cluster.key}.jsonl"
        parts = [part_path(setup.parts_dir, cluster.key, i, split) for i in range(shard_count)]
        metas = [part_path(setup.parts_dir, cluster.key, i, split + ".meta") for i in range(shard_count)]
        digest = hashlib.sha256()
        with atomic_open(target) as out, (atomic_open(target.with_suffix(".meta.jsonl")) if setup.encoder.sidecar
                                          else _Discard()) as meta_out:
            if not setup.deferred_tasks:  # nothing pending: the parts are copied in blocks between Dolly rows
                _mix_blocks(out, meta_out, digest, _concat(parts), _concat(metas) if setup.encoder.sidecar else None,
                            total, sorted(at), (setup.encoder.encode(dolly_row(row, cluster=cluster.key, split=split))
                                                for row in picked))
            else:
                generated_rows = resolved.rows(split, _concat(parts),
                                               _concat(metas) if setup.encoder.sidecar else None)
                for position in range(total):
                    if position in at:
                        line, meta = setup.encoder.encode(dolly_row(next(dolly_lines), cluster=cluster.key,
                                                                    split=split))
                    else:
                        line, meta = next(generated_rows)
                    out.write(line)
                    digest.update(line)
                    if meta is not None:
                        meta_out.write(meta)
        outputs[f"{split}/{cluster.key}.jsonl"] = {"rows": total, "generated": generated, "dolly": len(picked),
                                                   "dolly_wanted": wanted, "sha256": digest.hexdigest()}
    rejects = run_dir / STATE / f"{cluster.key}.rejects.jsonl"
    with atomic_open(rejects) as out:
        for index in range(shard_count):
            path = part_path(setup.parts_dir, cluster.key, index, "rejects")
            if path.exists():
                with open(path, "rb") as part:
                    shutil.copyfileobj(part, out)
        out.write(b"".join(resolved.rejects))  # rows the LLM gave no usable answer for
    write_json(run_dir / STATE / f"{cluster.key}.json", {"counts": counts.to_dict(), "outputs": outputs})
    for leftover in setup.parts_dir.glob(f"{glob.escape(cluster.key)}.*"):  # a file may be named cluster_*.jsonl
        leftover.unlink()
    rows = sum(o["rows"] for o in outputs.values())
    dolly_rows = sum(o["dolly"] for o in outputs.values())
    log.info("%s: read %d lines, used %d, sampled out %d, rejected %d -> %d rows (%d generated + %d Dolly)",
             cluster.key, counts.read, counts.used, counts.sampled_out, counts.rejected, rows, rows - dolly_rows,
             dolly_rows)
    return ClusterResult(counts, outputs)


class _Discard:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data: bytes) -> None:
        pass


_BLOCK_ROWS = 256  # generated lines joined into one write by _mix_blocks (a needle row is ~5 KB: ~1 MB)


def _mix_blocks(out, meta_out, digest, data_lines, meta_lines, total: int, dolly_at: list[int], dolly_encoded) -> None:
    """Write ``total`` rows: the encoded Dolly rows at the sorted positions ``dolly_at``, the generated lines
    (and their meta lines) in order everywhere else. The same bytes as a row-by-row loop, but each run of
    generated lines between two Dolly rows is one join and one write.

    Raises:
        RuntimeError: the part files hold fewer lines than the counts say.
    """
    done = 0
    for stop in [*dolly_at, total]:
        while stop > done:  # at most _BLOCK_ROWS lines at a time, so memory stays flat without Dolly rows too
            size = min(stop - done, _BLOCK_ROWS)
            block = b"".join(itertools.islice(data_lines, size))
            metas = b"".join(itertools.islice(meta_lines, size)) if meta_lines is not None else b""
            if block.count(b"\n") != size or (meta_lines is not None and metas.count(b"\n") != size):
                raise RuntimeError("the part files hold fewer rows than were counted")
            out.write(block)
            digest.update(block)
            meta_out.write(metas)
            done += size
        if stop < total:
            line, meta = next(dolly_encoded)
            out.write(line)
            digest.update(line)
            if meta is not None:
                meta_out.write(meta)
        done = stop + 1


def _concat(paths: list[Path]):
    for path in paths:
        if path.exists():
            with open(path, "rb") as handle:
                yield from handle


def _check_rejects(cfg, clusters: list[ClusterFile], results: dict, run_dir: Path) -> None:
    """Fail naming the file with the largest share of rejected lines, if any file is over the limit.

    The share is of the lines that were parsed (used + rejected): lines left out by max_chains_per_cluster
    were never looked at, so a wrong-shape file capped to 10,000 of 1M lines still fails.
    """
    limit = cfg.source.max_reject_fraction
    over = []
    for cluster in clusters:
        counts = results[cluster.key].counts
        parsed = counts.used + counts.rejected
        if parsed and counts.rejected / parsed > limit:
            over.append((counts.rejected / parsed, cluster, counts, parsed))
    if not over:
        return
    share, cluster, counts, parsed = max(over, key=lambda item: item[0])  # max keeps the first of equals
    top = "; ".join(f"{reason} ({n})" for reason, n in counts.reject_reasons.most_common(3))
    others = f" ({len(over) - 1} more file(s) over the limit)" if len(over) > 1 else ""
    raise InstructError(
        f"{cluster.path}: {counts.rejected} of {parsed} lines rejected ({share:.1%} > "
        f"source.max_reject_fraction={limit}){others}; top reasons: {top}. Wrong folder or file shape? "
        f"Every rejected line is in {run_dir / STATE / (cluster.key + '.rejects.jsonl')}"
    )


def _write_rejects(run_dir: Path, clusters: list[ClusterFile], dolly: DollySource | None) -> None:
    with atomic_open(run_dir / "rejects.jsonl") as out:
        for cluster in clusters:
            path = run_dir / STATE / f"{cluster.key}.rejects.jsonl"
            if path.exists():
                with open(path, "rb") as part:
                    shutil.copyfileobj(part, out)
        for line, reason in dolly.rejects if dolly else []:
            out.write(orjson.dumps({"file": str(dolly.path), "line": line, "reason": reason}) + b"\n")
