"""The whole run in one place: inputs → plan → shards (in parallel) → per-cluster files → manifest.

``generate(cfg, parent)`` is what ``run.py`` calls and what tests call with a composed config and a
temporary parent folder; it never looks at the working directory or at Hydra's globals.
"""

from __future__ import annotations

import glob
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from instruct import __version__
from instruct.assemble import ClusterResult, check_rejects, dolly_pools, finish_cluster, write_rejects
from instruct.card import write_card, write_incomplete_card
from instruct.clusterfile import ClusterFile, discover, scan
from instruct.counts import Counts
from instruct.dolly import DollySource
from instruct.errors import InstructError
from instruct.executor import Executor, make_executor
from instruct.filters.build import Filters
from instruct.formats import RecordEncoder
from instruct.manifest import build_manifest
from instruct.plan import Shard, plan_shards, select_lines
from instruct.responders import finish_responder, make_responder
from instruct.rundir import IDENTITY, MANIFEST, PARTS, STATE, open_run_dir, save_config, version_id, write_json
from instruct.schema import PROJECT_ROOT, check, versioned_config
from instruct.tasks.base import Task
from instruct.templates import TemplateSet
from instruct.text import post_words
from instruct.worker import Setup

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


BUNDLED_SAMPLE = PROJECT_ROOT / "data" / "sample"
# Said on every run over data of the user's own without decontamination: BluePrint's released files are where its
# evaluation threads come from, and nothing in a training row shows it was one.
NOT_DECONTAMINATED = ("not decontaminated: BluePrint's released cluster files hold the threads its evaluation set "
                      "tests on; add decontaminate=blueprint decontaminate.repo=<a BluePrint checkout> (or "
                      "decontaminate.paths=[...]) to keep them out of training")


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
    filters = Filters.from_config(cfg, tasks)  # a missing evaluation file or tokenizer fails here, naming it
    filters.clean_dolly(dolly)

    setup = Setup(seed=cfg.seed, tasks=tasks, encoder=RecordEncoder(cfg.output.format),
                  validation_fraction=cfg.split.validation_fraction, parts_dir=Path(), budget=filters.budget)
    # Before the run folder exists, so an unreachable endpoint fails fast and leaves nothing behind.
    setup.responder = make_responder(cfg.responder, [task.name for task in tasks])
    setup.deferred_tasks = setup.responder.tasks if setup.responder else frozenset()
    for task in tasks:
        task.llm_answers = task.name in setup.deferred_tasks
    with make_executor(cfg, setup, files) as executor:
        clusters = executor.map(scan, files)
        identity = {
            "config": versioned_config(cfg),
            "inputs": [[c.key, c.sha256] for c in clusters],
            "dolly": dolly.sha256 if dolly else None,
            "instruct": __version__,
            # Task parameters as instantiated, label-file hashes included: inputs beyond the threads.
            "tasks": {task.name: task.describe() for task in tasks},
            "filters": filters.identity(),
        }
        version = version_id(identity)
        run_dir = open_run_dir(parent, version, resume_dir, identity)
        setup.parts_dir = run_dir / PARTS
        save_config(run_dir, cfg, info.overrides, info.hydra_config)
        write_incomplete_card(run_dir)  # until the real card: load_dataset(run_dir) refuses a partial folder
        if not (run_dir / STATE / IDENTITY).exists():  # what a resume is compared with, to say what changed
            write_json(run_dir / STATE / IDENTITY, identity)
        handler = _log_to(run_dir / "run.log")
        try:
            for task in tasks:
                status = task.describe().get("status")
                if status:
                    log.log(logging.WARNING if "not applicable" in status else logging.INFO, "%s: %s", task.name, status)
            if not cfg.decontaminate.paths and Path(cfg.source.path).resolve() != BUNDLED_SAMPLE:
                log.warning(NOT_DECONTAMINATED)
            for cluster in clusters:
                if cluster.truncated:
                    log.warning("%s: %s; the %d lines before it are used", cluster.path, cluster.truncated, cluster.lines - 1)
            resumed = {c.key for c in clusters if (run_dir / STATE / f"{c.key}.json").exists()}
            results = _run_clusters(cfg, setup, executor, clusters, dolly, run_dir, filters)
            manifest = build_manifest(cfg=cfg, info=info, tasks=tasks, clusters=clusters, results=results,
                                      dolly=dolly, run_dir=run_dir, version=version, started=started,
                                      resumed=resumed)
            manifest["filters"] = filters.manifest(manifest["counts"]["per_task"])
            filters.write_contamination(run_dir, [c.key for c in clusters])
            manifest["responder"] = finish_responder(setup.responder, run_dir, [c.key for c in clusters])
            manifest["pending"] = manifest["responder"]["pending"]  # rows waiting for a Batch answer
            # The card imports matplotlib, the largest import of a run: the Dolly rows and the posts the shards
            # of this process analysed are read by nothing after this point, and freeing them first lets that
            # import reuse their memory instead of raising the process's peak.
            dolly = None
            post_words.cache_clear()
            write_card(run_dir, manifest)
            shutil.rmtree(run_dir / PARTS, ignore_errors=True)  # before the manifest: a complete folder has none
            write_json(run_dir / MANIFEST, manifest)  # last: its presence says the folder is complete
            shutil.rmtree(run_dir / STATE, ignore_errors=True)
        except OSError as exc:  # a part file, a folder, a log line: the disk filled up or went read-only
            _remove_empty_folders(run_dir)
            where = f" ({exc.filename})" if exc.filename else ""
            raise InstructError(f"cannot write in {run_dir}{where}: {exc.strerror or exc} (disk full or not "
                                f"writable?); once fixed, finish it with resume={run_dir}") from None
        except InstructError:
            _remove_empty_folders(run_dir)
            raise
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    total = manifest["counts"]
    log.info("wrote %d rows (%d generated, %d Dolly) to %s", total["rows"], total["generated"], total["dolly"], run_dir)
    return run_dir


def _remove_empty_folders(run_dir: Path) -> None:
    """A failed run keeps what explains it (log, rejects, .hydra/, the incomplete card) and what a resume reuses
    (.state/, finished clusters), but no empty folder."""
    for folder in (PARTS, "train", "validation", "meta/train", "meta/validation", "meta"):
        try:
            (run_dir / folder).rmdir()
        except OSError:
            pass


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO or logging.getLogger().level == logging.NOTSET:
        logging.getLogger().setLevel(logging.INFO)
    return handler


def _run_clusters(cfg, setup: Setup, executor: Executor, clusters: list[ClusterFile], dolly: DollySource | None,
                  run_dir: Path, filters: Filters) -> dict[str, ClusterResult]:
    results: dict[str, ClusterResult] = {}
    plans: dict[str, list[Shard]] = {}
    # The filter stage sees every cluster whole, in file order (finished ones of a resumed run too, for the
    # manifest); what it removes never reaches a shard.
    filters.filter_clusters(clusters, [select_lines(c, cfg.source.max_chains_per_cluster, cfg.seed) for c in clusters],
                            executor)
    for cluster in clusters:
        state = run_dir / STATE / f"{cluster.key}.json"
        if state.exists():  # finished before an interruption
            data = orjson.loads(state.read_bytes())
            results[cluster.key] = ClusterResult(Counts.from_dict(data["counts"]), data["outputs"])
            continue
        for leftover in (run_dir / PARTS).glob(f"{glob.escape(cluster.key)}.*"):  # a file may be named cluster_*.jsonl
            leftover.unlink()
        selected = select_lines(cluster, cfg.source.max_chains_per_cluster, cfg.seed)
        filtered = filters.clusters[cluster.key]
        plans[cluster.key] = plan_shards(cluster, filtered.kept(selected), shard_lines=cfg.source.shard_lines,
                                         lookback=setup.lookback, stats_threads=cfg.source.stats_threads,
                                         filtered=filtered.dropped)
    by_key = {cluster.key: cluster for cluster in clusters}
    finished: dict[str, dict[int, Counts]] = {key: {} for key in plans}
    pools = dolly_pools(dolly, cfg.seed, cfg.split.validation_fraction, setup.encoder)

    def on_done(key: str, index: int, counts: Counts) -> None:
        finished[key][index] = counts
        if len(finished[key]) == len(plans[key]):
            total = Counts()
            for shard_index in sorted(finished[key]):
                total.add(finished[key][shard_index])
            results[key] = finish_cluster(cfg, setup, by_key[key], len(plans[key]), total, pools, run_dir)

    shards = [shard for key in plans for shard in plans[key]]
    total_threads = sum(len(shard.lines) for shard in shards)
    with tqdm(total=total_threads, unit="thread", disable=None if cfg.progress else True, dynamic_ncols=True) as bar:
        executor.run(shards, on_done, bar)
    # Checked once every cluster is done (finished clusters of a resumed run included), so the one message
    # names the worst file whatever order the clusters finished in, and a resume cannot skip the check. The
    # rejects are written first, so a run that fails here shows them in its folder.
    write_rejects(run_dir, clusters, dolly)
    check_rejects(cfg, clusters, results, run_dir)
    return {cluster.key: results[cluster.key] for cluster in clusters}


