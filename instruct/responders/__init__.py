"""Who writes the responses of the LLM tasks: the data (``responder=none``), an OpenAI-compatible endpoint
(``openai``), an OpenAI Batch job (``batch``, then ``merge``). See conf/responder/ and the README."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import orjson
from omegaconf import DictConfig

from instruct.errors import InstructError
from instruct.responders.base import TOKEN_FIELDS, Responder
from instruct.responders.batch import BatchResponder
from instruct.responders.merge import MergeResponder, merge_config
from instruct.responders.openai import OpenAIResponder
from instruct.responders.pending import responder_state

log = logging.getLogger("instruct")

RESPONDERS = {"openai": OpenAIResponder, "batch": BatchResponder, "merge": MergeResponder}
# Request-level counts in the manifest, in this order.
REQUEST_COUNTS = ("prompts", "cache_hits", "requests", "retries", "answered", "failures", "budget_exhausted")

__all__ = ["RESPONDERS", "Responder", "finish_responder", "make_responder", "merge_config"]


def make_responder(cfg: DictConfig, task_names: list[str]) -> Responder | None:
    """Check the ``responder`` config, build the responder and let it check it can work (fail fast).

    Args:
        cfg: the ``responder`` config node.
        task_names: the names of the tasks in the mix.

    Returns None for ``responder=none``.
    """
    if cfg.name == "none":
        return None
    if cfg.name not in RESPONDERS:
        raise InstructError(f"responder.name={cfg.name!r} is unknown; choose none, {', '.join(RESPONDERS)}")
    for key, low in (("concurrency", 1), ("retries", 0), ("max_tokens", 1)):
        if cfg[key] < low:
            raise InstructError(f"responder.{key}={cfg[key]} must be >= {low}")
    for key in ("timeout_seconds", "preflight_timeout_seconds"):
        if cfg[key] <= 0:
            raise InstructError(f"responder.{key}={cfg[key]} must be > 0")
    if cfg.backoff_seconds < 0 or (cfg.max_requests is not None and cfg.max_requests < 0):
        raise InstructError("responder.backoff_seconds and responder.max_requests must be >= 0")
    if cfg.name == "merge" and not (cfg.results and cfg.batch_run):
        raise InstructError("responder=merge needs responder.batch_run=RUN_DIR and responder.results=FILE")
    responder = RESPONDERS[cfg.name](cfg)
    covered = sorted(responder.tasks & set(task_names))
    if not covered:
        log.warning("responder=%s: none of responder.tasks (%s) is in the task mix (%s); no row needs it",
                    cfg.name, ", ".join(sorted(responder.tasks)), ", ".join(task_names))
        return responder
    responder.start()
    return responder


def finish_responder(responder: Responder | None, run_dir: Path, clusters: list[str]) -> dict:
    """Let the responder finish (batch: write llm_requests.jsonl) and add up its counts for the manifest."""
    stats: Counter = Counter()
    reasons: Counter = Counter()
    instruction_tasks: set[str] = set()
    extra = responder.finish(run_dir, clusters) if responder else {}
    for cluster in clusters:
        path = responder_state(run_dir, cluster)
        if path.exists():
            state = orjson.loads(path.read_bytes())
            stats.update(state["stats"])
            reasons.update(state["reasons"])
            instruction_tasks.update(state.get("instruction_tasks", ()))
    summary = {
        "name": responder.name if responder else "none",
        "model": responder.model if responder else None,
        "endpoint_host": responder.endpoint if responder else None,
        "tasks": sorted(responder.tasks) if responder else [],
        **{key: stats[key] for key in REQUEST_COUNTS},
        "tokens": {key: stats[key] for key in TOKEN_FIELDS},
        "rows_llm": stats["rows_llm"],
        "rows_llm_instruction": stats["rows_llm_instruction"],
        "instruction_tasks": sorted(instruction_tasks),  # the model wrote their instructions, not responses
        "rows_rejected": stats["rows_rejected"],
        "refusals": reasons["refusal"],
        "empty": reasons["empty response"],
        "pending": stats["pending"],
        "reject_reasons": dict(reasons.most_common()),
        **extra,
    }
    if summary["rows_rejected"]:
        log.warning("%d rows had no usable LLM response and were left out (reasons in rejects.jsonl): %s",
                    summary["rows_rejected"], ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
    return summary
