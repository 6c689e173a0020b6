"""manifest.json: what was asked (config, overrides, chosen tasks), from which inputs (with sha256), what
came out (per file, per task, per template), how the mix came out, with which software, how long it took."""

from __future__ import annotations

import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version as package_version

from omegaconf import OmegaConf

from instruct import __version__
from instruct.counts import Counts

_PACKAGES = ("hydra-core", "omegaconf", "numpy", "orjson", "jsonlines", "tqdm", "datasketch", "tokenizers")


def _software() -> dict:
    found = {"instruct": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            found[name] = package_version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _choices(info) -> dict:
    """Hydra's group choices; a source option whose path was overridden says so (`source: sample` alone would
    claim the bundled sample was read)."""
    choices = dict(info.choices)
    if "source" in choices and any(o.lstrip("+").startswith("source.path=") for o in info.overrides):
        choices["source"] = f"{choices['source']} (source.path overridden)"
    return choices


def build_manifest(*, cfg, info, tasks, clusters, results, dolly, run_dir, version, started,
                   resumed: frozenset | set = frozenset()) -> dict:
    """Args (besides the run's parts): resumed: keys of the clusters finished before a resume, whose threads
    this process did not read (left out of threads_per_second)."""
    total = Counts()
    outputs: dict = {}
    inputs = []
    for cluster in clusters:
        result = results[cluster.key]
        total.add(result.counts)
        outputs.update(result.outputs)
        counts = result.counts
        inputs.append({"cluster": cluster.key, "file": str(cluster.path), "sha256": cluster.sha256,
                       "bytes": cluster.size, "lines": cluster.lines, "truncated": cluster.truncated,
                       "read": counts.read, "used": counts.used, "sampled_out": counts.sampled_out,
                       "rejected": counts.rejected, "filtered": counts.filtered, "no_task": counts.no_task})
    generated = sum(o["generated"] for o in outputs.values())
    dolly_rows = sum(o["dolly"] for o in outputs.values())
    rows = generated + dolly_rows
    # Rounded first, so the rate below is that of the seconds as written (a resume can take under a second,
    # where rounding the seconds afterwards moves the rate by more than its last digit).
    seconds = round(time.time() - started, 3)
    threads_now = sum(results[c.key].counts.used for c in clusters if c.key not in resumed)
    rows_by_split: dict[str, int] = {}
    for path, out in outputs.items():
        rows_by_split[path.split("/")[0]] = rows_by_split.get(path.split("/")[0], 0) + out["rows"]
    summary = total.to_dict()
    return {
        "complete": True,
        "instruct_version": __version__,
        "version_id": version,
        "run_dir": run_dir.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "job_num": info.job_num,
        "seed": cfg.seed,
        "overrides": list(info.overrides),
        "choices": {**_choices(info), "tasks": [task.name for task in tasks]},
        "config": OmegaConf.to_container(cfg, resolve=True),
        "tasks": {task.name: {"class": f"{type(task).__module__}.{type(task).__qualname__}", **task.describe()}
                  for task in tasks},
        "inputs": {
            "clusters": inputs,
            "dolly": None if dolly is None else {
                "file": str(dolly.path), "sha256": dolly.sha256, "rows": len(dolly.rows),
                "rejected": len(dolly.rejects)},
        },
        "outputs": dict(sorted(outputs.items())),
        "counts": {
            "rows": rows, "generated": generated, "dolly": dolly_rows,
            "rows_by_split": dict(sorted(rows_by_split.items())), "generated_by_split": summary["rows"],
            "lines_read": total.read, "threads_used": total.used, "sampled_out": total.sampled_out,
            "rejected": total.rejected + (len(dolly.rejects) if dolly else 0),
            "filtered": total.filtered,  # removed by the filter stage (see "filters")
            "threads_without_task": total.no_task,
            "per_task": summary["tasks"], "per_template": summary["templates"],
            "reject_reasons": summary["reject_reasons"],
        },
        "mix": {
            "requested_dolly_fraction": cfg.mix.dolly_fraction,
            "realized_dolly_fraction": round(dolly_rows / rows, 6) if rows else 0.0,
            "per_file": {path: round(o["dolly"] / o["rows"], 6) if o["rows"] else 0.0
                         for path, o in sorted(outputs.items())},
        },
        "software": _software(),
        "timing": {"seconds": seconds, "resumed_clusters": sorted(resumed),
                   "threads_per_second": round(threads_now / seconds, 1) if seconds > 0 else None},
    }
