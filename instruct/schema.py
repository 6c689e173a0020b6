"""Typed schemas for the config, registered in Hydra's ConfigStore.

``conf/config.yaml`` lists ``base_config`` first in its defaults, so every key is checked against these
dataclasses when the config is composed: a typo'd key or a value of the wrong type fails before any work,
with the key named. Range checks that a type cannot express live in ``check``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from instruct.errors import InstructError
from instruct.formats import FORMATS


@dataclass
class SourceConfig:
    path: str = MISSING                              # folder of cluster files
    pattern: str = "cluster_*.jsonl"                 # glob; `cluster_*.jsonl.gz` works too
    max_chains_per_cluster: Optional[int] = 10000    # uniform random sample per cluster; null = all
    max_reject_fraction: float = 0.05                # a file with more bad lines fails the run
    shard_lines: int = 100_000                       # lines per shard of a large cluster file
    stats_threads: int = 2000                        # threads per cluster for word statistics (IDF)


@dataclass
class DollyConfig:
    path: Optional[str] = None                       # a Dolly-format JSONL file


@dataclass
class MixConfig:
    dolly_fraction: float = 0.2                      # share of Dolly rows in each output file, in [0, 1)


@dataclass
class TemplatesConfig:
    set: str = "default"                             # a bundled template set (instruct/prompts/<set>)
    dir: Optional[str] = None                        # or a folder of your own <task>.yaml files


@dataclass
class OutputConfig:
    format: str = "messages"                         # messages | alpaca | sharegpt | blueprint


@dataclass
class SplitConfig:
    validation_fraction: float = 0.0                 # share of threads (and Dolly rows) in validation/


# An answer that starts like one of these declines the request; its row is rejected (case-insensitive).
REFUSAL_PATTERNS = (
    r"(?:I'm|I’m|I am) sorry,? (?:but )?I (?:can(?:not|'t|’t)|can not|won(?:'t|’t)|will not|am (?:unable|not able))",
    r"Sorry,? (?:but )?I (?:can(?:not|'t|’t)|can not|won(?:'t|’t)|am unable)",
    r"I (?:can(?:not|'t|’t)|can not|won(?:'t|’t)|will not|am unable to|am not able to|(?:'m|’m) (?:unable|not able) to)"
    r" (?:help with|help you|assist|comply|fulfil|provide|complete (?:this|that|the)|do (?:this|that)|answer"
    r"|summari[sz]e|paraphrase|rewrite|determine|infer)",
    r"I apologi[sz]e,? but",
    r"As an AI\b",
)


@dataclass
class ResponderConfig:
    """Who writes the responses of the tasks in ``tasks``: the data (none), an endpoint, or a Batch job."""

    name: str = "none"                               # none | openai | batch | merge (choose with responder=…)
    tasks: List[str] = field(default_factory=lambda: ["summarization", "paraphrase", "voting_intention"])
    base_url: str = "https://api.openai.com/v1"      # any OpenAI-compatible /v1 (vLLM, SGLang, llama.cpp, Ollama)
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"              # the NAME of the variable; the key is never stored
    system_prompt: Optional[str] = ("You write the response of one example of an instruction-tuning dataset. "
                                    "Reply with the response only: no preamble, no notes.")
    temperature: float = 0.0
    max_tokens: int = 512
    extra_body: Dict[str, Any] = field(default_factory=dict)   # more request fields (seed, top_p …)
    concurrency: int = 8                             # requests in flight at once
    retries: int = 4                                 # extra attempts on 429/5xx/timeouts, exponential backoff
    backoff_seconds: float = 1.0                     # first wait; doubles per attempt (Retry-After wins)
    timeout_seconds: float = 60.0                    # per request
    preflight_timeout_seconds: float = 5.0           # GET /models before the run: unreachable fails fast
    max_requests: Optional[int] = None               # per-run budget of prompts sent; null = no limit
    cache_dir: str = "${output_root}/.llm_cache"     # answers keyed by sha256(model, messages, params)
    refusal_patterns: List[str] = field(default_factory=lambda: list(REFUSAL_PATTERNS))  # matched at the start
    results: Optional[str] = None                    # merge: the Batch output file
    batch_run: Optional[str] = None                  # merge: the run folder written by responder=batch
    results_sha256: Optional[str] = None             # merge: filled in from the results file


@dataclass
class DecontaminateConfig:
    """Evaluation sets no training thread or Dolly row may overlap (instruct/filters/decontaminate.py)."""

    paths: List[str] = field(default_factory=list)   # Batch input, solutions.json, cluster files, plain JSONL
    ngram: int = 13                                  # words per n-gram
    short_words: int = 4                             # texts of [short_words, ngram) words match as a whole; 0: off
    text_field: str = "text"                         # the text of a plain JSONL file
    repo: Optional[str] = None                       # a BluePrint checkout (decontaminate=blueprint reads it)


@dataclass
class DedupConfig:
    """Near-duplicate posts within a cluster (instruct/filters/dedup.py)."""

    enabled: bool = True
    threshold: float = 0.8                           # Jaccard similarity of word shingles
    num_perm: int = 64                               # MinHash permutations
    shingle: int = 3                                 # words per shingle


@dataclass
class BudgetConfig:
    """Token counting and the row length limit (instruct/filters/budget.py)."""

    tokenizer: Optional[str] = None                  # a local tokenizer.json or a folder with one; null: estimate
    max_tokens: Optional[int] = None                 # rows with more prompt + response tokens are dropped
    chars_per_token: float = 4.0                     # the estimate without a tokenizer


@dataclass
class InstructConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    dolly: DollyConfig = field(default_factory=DollyConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    tasks: Dict[str, Any] = field(default_factory=dict)
    templates: TemplatesConfig = field(default_factory=TemplatesConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    responder: ResponderConfig = field(default_factory=ResponderConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    seed: int = 42
    workers: int = 1
    progress: bool = True
    run_name: str = "default"
    output_root: str = "outputs"
    resume: Optional[str] = None


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def register() -> None:
    """Register the schema and the ``${instruct_root:}`` resolver (the checkout, where the bundled sample
    data lives). Safe to call more than once."""
    ConfigStore.instance().store(name="base_config", node=InstructConfig)
    OmegaConf.register_new_resolver("instruct_root", lambda: str(PROJECT_ROOT), replace=True)


# Keys that change how a run is executed but not one byte of what it writes.
EXECUTION_KEYS = ("workers", "progress", "resume", "run_name", "output_root")
# Responder keys that change how answers are fetched, not what they are (the cache makes reruns equal).
RESPONDER_EXECUTION_KEYS = ("api_key_env", "concurrency", "retries", "backoff_seconds", "timeout_seconds",
                            "preflight_timeout_seconds", "max_requests", "cache_dir", "results", "batch_run")


def versioned_config(cfg: DictConfig) -> dict:
    """The resolved config minus the execution keys: what the version id hashes."""
    content = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in EXECUTION_KEYS}
    # Inputs count by their sha256 (hashed next to this), not by where they lie: the same files in another
    # checkout or folder give the same version id.
    content["source"].pop("path", None)
    content["dolly"].pop("path", None)
    # The evaluation files and the tokenizer count by their sha256 too (filters.identity), not their paths.
    for key in ("paths", "repo"):
        content["decontaminate"].pop(key, None)
    content["budget"].pop("tokenizer", None)
    responder = content.get("responder", {})
    if responder.get("name", "none") == "none":  # its other keys are unused, so they cannot change a byte
        content["responder"] = {"name": "none"}
    for key in RESPONDER_EXECUTION_KEYS:
        responder.pop(key, None)
    return content


def _unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of ``node`` that the dataclass ``schema`` does not have; free-form mappings (tasks, extra_body) are
    not looked into."""
    known = {f.name: f.default_factory for f in fields(schema)}
    unknown = []
    for key in node.keys():
        if key not in known:
            unknown.append(f"{prefix}{key}")
        elif is_dataclass(known[key]) and not OmegaConf.is_missing(node, key) and OmegaConf.is_dict(node[key]):
            unknown += _unknown_keys(node[key], known[key], f"{prefix}{key}.")
    return unknown


def check(cfg: DictConfig) -> None:
    """Range checks a type cannot express; each failure names the key."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise InstructError(f"{missing[0]} is not set (give it on the command line: {missing[0]}=…)")
    unknown = _unknown_keys(cfg, InstructConfig)
    if unknown:  # Hydra checks overrides against the schema, but `+key=value` adds a key past it
        raise InstructError(f"unknown config key {unknown[0]} (a typo? `python run.py --cfg job` lists every key)")

    def fraction(key: str, value: float) -> None:
        if not 0.0 <= value < 1.0:
            raise InstructError(f"{key}={value} is out of range: it must be in [0, 1)")

    fraction("mix.dolly_fraction", cfg.mix.dolly_fraction)
    fraction("split.validation_fraction", cfg.split.validation_fraction)
    if not 0.0 <= cfg.source.max_reject_fraction <= 1.0:
        raise InstructError(f"source.max_reject_fraction={cfg.source.max_reject_fraction} must be in [0, 1]")
    if cfg.source.max_chains_per_cluster is not None and cfg.source.max_chains_per_cluster < 1:
        raise InstructError("source.max_chains_per_cluster must be >= 1, or null for all threads")
    if cfg.workers < 1:
        raise InstructError(f"workers={cfg.workers} must be >= 1")
    if cfg.source.shard_lines < 1:
        raise InstructError("source.shard_lines must be >= 1")
    if cfg.source.stats_threads < 0:
        raise InstructError("source.stats_threads must be >= 0")
    _check_filters(cfg)
    if cfg.output.format not in FORMATS:
        raise InstructError(f"output.format={cfg.output.format!r} is unknown; choose one of {sorted(FORMATS)}")
    if not cfg.tasks:
        raise InstructError("no tasks configured (choose a mix: tasks=paper, tasks=all, tasks=persona)")
    for name, task in cfg.tasks.items():
        if not isinstance(task, DictConfig) or "_target_" not in task:
            raise InstructError(f"tasks.{name} must be a mapping with a _target_ class")
        weight = task.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise InstructError(f"tasks.{name}.weight={weight!r} must be a number >= 0")
    if sum(float(task.get("weight", 1.0)) for task in cfg.tasks.values()) <= 0:
        raise InstructError("every task weight is zero: set at least one tasks.<name>.weight > 0")



def _check_filters(cfg: DictConfig) -> None:
    """Ranges of the decontaminate, dedup and budget keys (and tasks.needle.max_tokens)."""
    raw_paths = OmegaConf.to_container(cfg.decontaminate, resolve=False).get("paths") or []
    if cfg.decontaminate.repo is None and any("decontaminate.repo" in str(path) for path in raw_paths):
        raise InstructError("decontaminate.repo is not set: decontaminate=blueprint reads the evaluation files "
                            "from a BluePrint checkout (decontaminate.repo=/path/to/BluePrint)")
    if cfg.decontaminate.ngram < 1:
        raise InstructError(f"decontaminate.ngram={cfg.decontaminate.ngram} must be >= 1")
    if not 0 <= cfg.decontaminate.short_words <= cfg.decontaminate.ngram:
        raise InstructError(f"decontaminate.short_words={cfg.decontaminate.short_words} must be in "
                            f"[0, decontaminate.ngram={cfg.decontaminate.ngram}]")
    if not cfg.decontaminate.text_field:
        raise InstructError("decontaminate.text_field must not be empty")
    if not 0.0 < cfg.dedup.threshold <= 1.0:
        raise InstructError(f"dedup.threshold={cfg.dedup.threshold} must be in (0, 1]")
    if not 4 <= cfg.dedup.num_perm <= 256:
        raise InstructError(f"dedup.num_perm={cfg.dedup.num_perm} must be in [4, 256]")
    if cfg.dedup.shingle < 1:
        raise InstructError(f"dedup.shingle={cfg.dedup.shingle} must be >= 1")
    if cfg.budget.max_tokens is not None and cfg.budget.max_tokens < 1:
        raise InstructError(f"budget.max_tokens={cfg.budget.max_tokens} must be >= 1, or null for no limit")
    if not cfg.budget.chars_per_token > 0:
        raise InstructError(f"budget.chars_per_token={cfg.budget.chars_per_token} must be > 0")
    needle = cfg.tasks.get("needle")
    if isinstance(needle, DictConfig) and needle.get("max_tokens") is not None:
        value = needle.max_tokens
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InstructError(f"tasks.needle.max_tokens={value!r} must be an integer >= 1, or null")
