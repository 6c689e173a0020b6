"""The filters of one run, built from the config at start (so a missing evaluation file or tokenizer fails
before any work), and what they add to the version id, the Dolly pool, the run folder and the manifest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from instruct.filters import normalize
from instruct.filters.budget import Budget, TokenCounter, length_stats
from instruct.filters.decontaminate import Decontaminator
from instruct.filters.dedup import DedupParams
from instruct.filters.evalsets import sha256_of
from instruct.filters.stage import ClusterFiltered, FilterStage, run_stage
from instruct.rundir import atomic_open

CONTAMINATION = "contamination.jsonl"


@dataclass
class Filters:
    """Args:
        stage: the per-cluster pass (decontamination, dedup).
        budget: the token counter and limit the worker applies to every row.
        clusters: cluster key → what the stage removed.
        dolly: what happened to the Dolly rows: decontaminated, over budget, their contamination records and the
            kept rows' lengths.
    """

    stage: FilterStage
    budget: Budget
    clusters: dict[str, ClusterFiltered] = field(default_factory=dict)
    dolly_removed: Counter = field(default_factory=Counter)
    dolly_contamination: list[dict] = field(default_factory=list)
    dolly_lengths: Counter = field(default_factory=Counter)

    @classmethod
    def from_config(cls, cfg, tasks) -> "Filters":
        decontaminate = cfg.decontaminate
        decontaminator = (Decontaminator.load(list(decontaminate.paths), decontaminate.ngram,
                                              decontaminate.text_field, decontaminate.short_words)
                          if decontaminate.paths else None)
        dedup = (DedupParams(cfg.dedup.threshold, cfg.dedup.num_perm, cfg.dedup.shingle)
                 if cfg.dedup.enabled else None)
        counter = TokenCounter(cfg.budget.tokenizer, cfg.budget.chars_per_token)
        for task in tasks:  # tasks that size what they build to a token budget (needle)
            if getattr(task, "max_tokens", None) is not None:
                task.size_with(counter)
        return cls(FilterStage(decontaminator, dedup), Budget(counter, cfg.budget.max_tokens))

    def identity(self) -> dict:
        """The inputs beyond the threads that change what is written: evaluation files and tokenizer by sha256."""
        decontaminator = self.stage.decontaminator
        counter = self.budget.counter
        return {"eval_files": [f.sha256 for f in decontaminator.files] if decontaminator else [],
                "tokenizer": sha256_of(counter.path) if counter.path else None}

    def filter_clusters(self, clusters, selections: list[np.ndarray], executor) -> None:
        for cluster, filtered in zip(clusters, run_stage(self.stage, clusters, selections, executor)):
            self.clusters[cluster.key] = filtered

    def clean_dolly(self, dolly) -> None:
        """Drop the Dolly rows that overlap an evaluation set or exceed the token budget (counted)."""
        if dolly is None:
            return
        kept = []
        decontaminator = self.stage.decontaminator
        matches = {}
        if decontaminator is not None:  # all rows in one batch check (match_many hashes them a batch at a time)
            matches = decontaminator.match_many(
                [None] * len(dolly.rows),
                [[text for text in map(normalize.joined, (row.instruction, row.context, row.response)) if text]
                 for row in dolly.rows])
        for number, row in enumerate(dolly.rows):
            match = matches.get(number)
            if match is not None:
                self.dolly_removed[f"decontaminated: {match.by}"] += 1
                self.dolly_contamination.append({
                    "cluster": None, "file": str(dolly.path), "line": row.line, "thread_id": None,
                    "eval_id": match.eval_id, "eval_file": decontaminator.files[match.eval_file].path,
                    "match": match.by, "ngram": match.ngram})
                continue
            tokens = self.budget.counter(row.instruction) + self.budget.counter(row.context) + self.budget.counter(row.response)
            if self.budget.max_tokens is not None and tokens > self.budget.max_tokens:
                self.dolly_removed[f"over budget.max_tokens={self.budget.max_tokens}"] += 1
                continue
            self.dolly_lengths[tokens] += 1
            kept.append(row)
        dolly.rows[:] = kept

    def write_contamination(self, run_dir: Path, cluster_keys: list[str]) -> None:
        with atomic_open(run_dir / CONTAMINATION) as out:
            for key in cluster_keys:
                for record in self.clusters[key].contamination:
                    out.write(orjson.dumps(record) + b"\n")
            for record in self.dolly_contamination:
                out.write(orjson.dumps(record) + b"\n")

    def manifest(self, per_task: dict) -> dict:
        """The manifest's ``filters`` section; takes the length histograms out of ``per_task``."""
        decontaminator = self.stage.decontaminator
        removed_by_file = Counter()
        for filtered in self.clusters.values():
            removed_by_file.update(filtered.by_eval_file)
        for record in self.dolly_contamination:
            removed_by_file[[f.path for f in decontaminator.files].index(record["eval_file"])] += 1
        tokens = {name: length_stats(task.pop("lengths", {})) for name, task in per_task.items()}
        tokens["dolly"] = {**length_stats(self.dolly_lengths), "of": "the usable Dolly pool"}
        return {
            "decontaminate": None if decontaminator is None else {
                "ngram": decontaminator.n, "short_words": decontaminator.short_words,
                "eval_files": [{"file": f.path, "sha256": f.sha256, "shape": f.shape, "records": f.records,
                                "ngrams": f.ngrams, "removed": removed_by_file[i]}
                               for i, f in enumerate(decontaminator.files)],
                "contamination_file": CONTAMINATION},
            "dedup": None if self.stage.dedup is None else {
                "threshold": self.stage.dedup.threshold, "num_perm": self.stage.dedup.num_perm,
                "shingle": self.stage.dedup.shingle, "bands": next((list(f.bands) for f in self.clusters.values() if f.bands), None)},
            "removed_per_cluster": {key: dict(sorted(f.reasons.items())) for key, f in self.clusters.items()},
            "removed_dolly": dict(sorted(self.dolly_removed.items())),
            "budget": {"counter": self.budget.counter.method, "max_tokens": self.budget.max_tokens,
                       "dropped_per_task": {name: sum(n for reason, n in task["failed"].items()
                                                      if reason.startswith("over budget.max_tokens"))
                                            for name, task in per_task.items()}},
            "tokens_per_task": tokens,
        }
