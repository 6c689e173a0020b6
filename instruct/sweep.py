"""At the end of a sweep, one CSV row per job: overrides, counts, realized mix, where the data is."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

COLUMNS = ("job", "overrides", "rows", "generated", "dolly", "requested_dolly_fraction",
           "realized_dolly_fraction", "rejected", "seconds", "path")


class SweepSummary(Callback):
    """Writes ``sweep_summary.csv`` into the sweep folder from the jobs' manifests."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = []
        for path in sweep_dir.glob("*/manifest.json"):
            manifest = orjson.loads(path.read_bytes())
            if not manifest.get("complete"):
                continue
            rows.append({
                "job": manifest["job_num"], "overrides": " ".join(manifest["overrides"]),
                "rows": manifest["counts"]["rows"], "generated": manifest["counts"]["generated"],
                "dolly": manifest["counts"]["dolly"],
                "requested_dolly_fraction": manifest["mix"]["requested_dolly_fraction"],
                "realized_dolly_fraction": manifest["mix"]["realized_dolly_fraction"],
                "rejected": manifest["counts"]["rejected"], "seconds": manifest["timing"]["seconds"],
                "path": str(path.parent),
            })
        rows.sort(key=lambda row: (row["job"] is None, row["job"]))
        if not sweep_dir.is_dir():
            return
        with open(sweep_dir / "sweep_summary.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
