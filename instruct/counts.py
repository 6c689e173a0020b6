"""Counters a shard keeps and the run adds up: what was read, used, sampled out, rejected, and what each
task did with the threads it was offered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class TaskCounts:
    """Args:
        offered: threads the task was asked about.
        produced: rows it built.
        declined: why it could not use a thread, reason → count.
        failed: why a drawn build gave no row after all, reason → count.
        variants: rows per template variant (summarization: ``thread`` vs ``feed`` prompts).
        lengths: the rows' lengths in tokens, tokens → rows (filters/budget.py), so statistics are exact.
    """

    offered: int = 0
    produced: int = 0
    declined: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    variants: Counter = field(default_factory=Counter)
    lengths: Counter = field(default_factory=Counter)

    def add(self, other: "TaskCounts") -> None:
        self.offered += other.offered
        self.produced += other.produced
        self.declined.update(other.declined)
        self.failed.update(other.failed)
        self.variants.update(other.variants)
        self.lengths.update(other.lengths)

    @property
    def eligible(self) -> int:
        """Threads it could use: every offered thread it did not decline."""
        return self.offered - sum(self.declined.values())

    def to_dict(self) -> dict:
        return {"offered": self.offered, "eligible": self.eligible, "produced": self.produced,
                "declined": dict(sorted(self.declined.items())), "failed": dict(sorted(self.failed.items())),
                "variants": dict(sorted(self.variants.items())),
                "lengths": {str(k): v for k, v in sorted(self.lengths.items())}}


@dataclass(slots=True)
class Counts:
    """Everything one shard (or a cluster, or the run) counted. ``read = used + sampled_out + rejected + filtered``.

    Args:
        read: lines of the file covered.
        used: lines parsed into a thread and offered to the tasks.
        sampled_out: lines left out by ``max_chains_per_cluster``.
        rejected: lines that could not be used (each one is in rejects.jsonl).
        filtered: threads the filter stage removed before any task saw them (instruct/filters).
        no_task: used threads that no task could turn into a row.
        rows: rows generated per split.
        reject_reasons: reason → count (the reason's first words, so similar errors group).
        tasks: per task name.
        templates: rows per template id.
    """

    read: int = 0
    used: int = 0
    sampled_out: int = 0
    rejected: int = 0
    filtered: int = 0
    no_task: int = 0
    rows: Counter = field(default_factory=Counter)
    reject_reasons: Counter = field(default_factory=Counter)
    tasks: dict[str, TaskCounts] = field(default_factory=dict)
    templates: Counter = field(default_factory=Counter)

    def task(self, name: str) -> TaskCounts:
        return self.tasks.setdefault(name, TaskCounts())

    def add(self, other: "Counts") -> None:
        self.read += other.read
        self.used += other.used
        self.sampled_out += other.sampled_out
        self.rejected += other.rejected
        self.filtered += other.filtered
        self.no_task += other.no_task
        self.rows.update(other.rows)
        self.reject_reasons.update(other.reject_reasons)
        self.templates.update(other.templates)
        for name, counts in other.tasks.items():
            self.task(name).add(counts)

    def to_dict(self) -> dict:
        return {
            "read": self.read, "used": self.used, "sampled_out": self.sampled_out, "rejected": self.rejected,
            "filtered": self.filtered, "no_task": self.no_task, "rows": dict(sorted(self.rows.items())),
            "reject_reasons": dict(self.reject_reasons.most_common()),
            "tasks": {name: counts.to_dict() for name, counts in sorted(self.tasks.items())},
            "templates": dict(sorted(self.templates.items())),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Counts":
        counts = cls(read=data["read"], used=data["used"], sampled_out=data["sampled_out"],
                     rejected=data["rejected"], filtered=data.get("filtered", 0), no_task=data["no_task"], rows=Counter(data["rows"]),
                     reject_reasons=Counter(data["reject_reasons"]), templates=Counter(data["templates"]))
        for name, task in data["tasks"].items():
            counts.tasks[name] = TaskCounts(task["offered"], task["produced"], Counter(task["declined"]),
                                            Counter(task["failed"]), Counter(task.get("variants", {})),
                                            Counter({int(k): v for k, v in task.get("lengths", {}).items()}))
        return counts
