"""Assemble a cluster's output files once all its shards are done: the shards' part files in order, Dolly
rows mixed in at seeded random positions, LLM answers put back in place; then the run's rejects and the
reject-rate check."""

from __future__ import annotations

import glob
import hashlib
import itertools
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson

from instruct.clusterfile import ClusterFile
from instruct.counts import Counts
from instruct.dolly import DollyLines, DollySource
from instruct.errors import InstructError
from instruct.formats import sidecar_path
from instruct.responders.pending import resolve_pending
from instruct.rundir import STATE, atomic_open, write_json
from instruct.seeding import DOLLY, rng_for, unit_interval
from instruct.worker import TRAIN, VALIDATION, Setup, part_path

log = logging.getLogger("instruct")


@dataclass
class ClusterResult:
    """Args:
        counts: everything its shards counted.
        outputs: relative output path → {rows, generated, dolly, sha256}.
    """

    counts: Counts
    outputs: dict


@dataclass
class DollyPools:
    """Args:
        rows: the Dolly rows by split; a row is put on one side of the split by a stable hash of its line.
        lines: their encoded lines, each row encoded once however many clusters pick it.
    """

    rows: dict[str, list]
    lines: DollyLines


def dolly_pools(dolly: DollySource | None, seed: int, validation_fraction: float, encoder) -> DollyPools:
    rows: dict[str, list] = {TRAIN: [], VALIDATION: []}
    if dolly is not None and validation_fraction <= 0:  # no hash is below 0: every row is train, unhashed
        rows[TRAIN] = list(dolly.rows)
    elif dolly is not None:
        for row in dolly.rows:
            side = VALIDATION if unit_interval(seed, f"dolly:{row.line}") < validation_fraction else TRAIN
            rows[side].append(row)
    return DollyPools(rows, DollyLines(encoder))


def finish_cluster(cfg, setup: Setup, cluster: ClusterFile, shard_count: int, counts: Counts, dolly: DollyPools,
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
        pool = dolly.rows[split]
        picked = [pool[i] for i in rng.choice(len(pool), size=min(wanted, len(pool)), replace=False)] if pool else []
        if wanted > len(picked):
            log.warning("%s/%s: wanted %d Dolly rows, the Dolly file has %d for this split", split, cluster.key,
                        wanted, len(pool))
        total = generated + len(picked)
        at = set(rng.choice(total, size=len(picked), replace=False).tolist()) if picked else set()
        folder = run_dir / split
        folder.mkdir(exist_ok=True)
        target = folder / f"{cluster.key}.jsonl"
        parts = [part_path(setup.parts_dir, cluster.key, i, split) for i in range(shard_count)]
        metas = [part_path(setup.parts_dir, cluster.key, i, split + ".meta") for i in range(shard_count)]
        digest = hashlib.sha256()
        if setup.encoder.sidecar:
            sidecar_path(target).parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(target) as out, (atomic_open(sidecar_path(target)) if setup.encoder.sidecar
                                          else _Discard()) as meta_out:
            if not setup.deferred_tasks:  # nothing pending: the parts are copied in blocks between Dolly rows
                mix_blocks(out, meta_out, digest, _concat(parts), _concat(metas) if setup.encoder.sidecar else None,
                            total, sorted(at),
                            (dolly.lines.encode(row, cluster=cluster.key, split=split) for row in picked))
            else:
                picked_rows = iter(picked)
                generated_rows = resolved.rows(split, _concat(parts),
                                               _concat(metas) if setup.encoder.sidecar else None)
                for position in range(total):
                    if position in at:
                        line, meta = dolly.lines.encode(next(picked_rows), cluster=cluster.key, split=split)
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


BLOCK_ROWS = 256  # rows joined into one write by mix_blocks (a needle row is ~5 KB: ~1 MB)


def mix_blocks(out, meta_out, digest, data_lines, meta_lines, total: int, dolly_at: list[int], dolly_encoded) -> None:
    """Write ``total`` rows: the encoded Dolly rows at the sorted positions ``dolly_at``, the generated lines
    (and their meta lines) in order everywhere else. The same bytes as a row-by-row loop, but the lines are
    taken from the parts in runs (``islice``, in C) and ``BLOCK_ROWS`` rows, Dolly rows included, are one join,
    one write and one hash update.

    Raises:
        RuntimeError: the part files hold fewer lines than the counts say.
    """
    lines: list[bytes] = []
    metas: list[bytes] = []
    done = 0
    for stop in [*dolly_at, total]:
        while done < stop:  # at most BLOCK_ROWS lines at a time, so memory stays flat without Dolly rows too
            size = min(stop - done, BLOCK_ROWS)
            _take(data_lines, size, lines)
            if meta_lines is not None:
                _take(meta_lines, size, metas)
            done += size
            if len(lines) >= BLOCK_ROWS:
                _flush(out, meta_out, digest, lines, metas)
        if stop < total:
            line, meta = next(dolly_encoded)
            lines.append(line)
            if meta is not None:
                metas.append(meta)
            done = stop + 1
    _flush(out, meta_out, digest, lines, metas)


def _take(source, size: int, into: list[bytes]) -> None:
    before = len(into)
    into += itertools.islice(source, size)
    if len(into) - before != size:
        raise RuntimeError("the part files hold fewer rows than were counted")


def _flush(out, meta_out, digest, lines: list[bytes], metas: list[bytes]) -> None:
    block = b"".join(lines)
    out.write(block)
    digest.update(block)
    meta_out.write(b"".join(metas))
    lines.clear()
    metas.clear()


def _concat(paths: list[Path]):
    """The lines of the part files that exist, in order.

    Raises:
        RuntimeError: a part file's last line has no newline (it was cut short), which would join two rows.
    """
    for path in paths:
        if path.exists():
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size and os.pread(handle.fileno(), 1, size - 1) != b"\n":
                    raise RuntimeError(f"{path}: the last line is cut short")
                yield from handle


def check_rejects(cfg, clusters: list[ClusterFile], results: dict, run_dir: Path) -> None:
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
        f"Every rejected line is in {run_dir / 'rejects.jsonl'}"
    )


def write_rejects(run_dir: Path, clusters: list[ClusterFile], dolly: DollySource | None) -> None:
    with atomic_open(run_dir / "rejects.jsonl") as out:
        for cluster in clusters:
            path = run_dir / STATE / f"{cluster.key}.rejects.jsonl"
            if path.exists():
                with open(path, "rb") as part:
                    shutil.copyfileobj(part, out)
        for line, reason in dolly.rejects if dolly else []:
            out.write(orjson.dumps({"file": str(dolly.path), "line": line, "reason": reason}) + b"\n")
