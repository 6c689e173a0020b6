"""Typed schemas for the config, registered in Hydra's ConfigStore.

``conf/config.yaml`` lists ``base_config`` first in its defaults, so every key is checked against these
dataclasses when the config is composed: a typo'd key or a value of the wrong type fails before any work,
with the key named. Range checks that a type cannot express live in ``check``.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.utils import get_class
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from instruct.errors import InstructError
from instruct.formats import FORMATS


@dataclass
class SourceConfig:
    path: str = MISSING                              # folder of cluster files
    pattern: str = "cluster_*.jsonl"                 # glob; `cluster_*.jsonl.gz` works too
    max_chains_per_cluster: Optional[int] = 10000    # uniform random sample per cluster; null = all
    max_reject_fraction: float = 0.05                # a file with more bad lines fails the run
    shard_lines: int = 100_000                       # used lines per shard of a large cluster file
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
class CardConfig:
    chart: bool = True                               # lengths.png beside the card (matplotlib)


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
class ExecutorConfig:
    """Where shards run (choose with executor=…); ``workers`` says how many run at once on either."""

    name: str = "local"                              # local (a fork pool on this machine) | ray (a Ray cluster)
    address: str = "auto"                            # ray: auto, ray://head:10001, head:6379, or local (start one)
    num_cpus: float = 1.0                            # ray: CPUs reserved per shard task
    max_retries: int = 3                             # ray: times a shard whose worker or node died is run again


EXECUTORS = ("local", "ray")


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
    card: CardConfig = field(default_factory=CardConfig)
    responder: ResponderConfig = field(default_factory=ResponderConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
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
EXECUTION_KEYS = ("workers", "executor", "progress", "resume", "run_name", "output_root")
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
    _check_executor(cfg.executor)
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
        check_task(f"tasks.{name}", task)
    if sum(float(task.get("weight", 1.0)) for task in cfg.tasks.values()) <= 0:
        raise InstructError("every task weight is zero: set at least one tasks.<name>.weight > 0")



def _check_executor(executor: DictConfig) -> None:
    if executor.name not in EXECUTORS:
        raise InstructError(f"executor.name={executor.name!r} is unknown; choose one of {list(EXECUTORS)}")
    if executor.name == "local":  # the Ray keys would be ignored: say so rather than run on one machine silently
        defaults = ExecutorConfig()
        for key in ("address", "num_cpus", "max_retries"):
            if executor[key] != getattr(defaults, key):
                raise InstructError(f"executor.{key} applies to executor=ray only (this run has executor=local)")
    if not executor.address:
        raise InstructError("executor.address must be auto, local, or a cluster address such as ray://head:10001")
    if not executor.num_cpus > 0:
        raise InstructError(f"executor.num_cpus={executor.num_cpus} must be > 0")
    if executor.max_retries < 0:
        raise InstructError(f"executor.max_retries={executor.max_retries} must be >= 0")


def check_task(key: str, node: object) -> None:
    """Check a task node against its class's ``__init__``: every key a parameter, every value of the parameter's
    annotated type and within the class's ``bounds`` (a number not listed there must be >= 0). Generic, so a new
    task class gets the same checks; what ties parameters together (min <= max) stays in its ``__init__``."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise InstructError(f"{key} must be a mapping with a _target_ class")
    try:
        cls = get_class(node._target_)
    except Exception as exc:  # Hydra wraps the import error; its first line says what is missing
        raise InstructError(f"{key}._target_={node._target_!r} is not an importable class: "
                            f"{str(exc).splitlines()[0]}") from None
    try:
        values = OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as exc:
        raise InstructError(f"{key}: {str(exc).splitlines()[0]}") from None
    parameters = {name: p for name, p in inspect.signature(cls.__init__).parameters.items()
                  if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    hints = typing.get_type_hints(cls.__init__)
    bounds = getattr(cls, "bounds", {})
    for param, value in values.items():
        if param.startswith("_"):  # _target_, and Hydra's _partial_/_convert_/…
            continue
        if param not in parameters:
            raise InstructError(f"unknown config key {key}.{param} ({key} takes: {', '.join(parameters)})")
        expected, fits = _expectation(hints.get(param, Any))
        low, high = bounds.get(param, (0, None))
        is_number = expected in ("an integer", "a number")
        if is_number:
            expected += (f" in [{low}, {high}]" if high is not None else f" >= {low}") if low is not None else (
                f" <= {high}" if high is not None else "")
        if not fits(value) or (is_number and value is not None and (
                (low is not None and value < low) or (high is not None and value > high))):
            raise InstructError(f"{key}.{param}={value!r} must be {expected}")


def _expectation(hint) -> tuple[str, typing.Callable[[object], bool]]:
    """What an annotation asks for, in words, and a test of a plain (to_container) config value against it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        words, fits = _expectation(options[0] if len(options) == 1 else Any)
        if type(None) in args:
            return f"{words} or null", lambda v: v is None or fits(v)
        return words, fits
    if hint is bool:
        return "true or false", lambda v: type(v) is bool
    if hint is int:
        return "an integer", lambda v: type(v) is int
    if hint is float:
        return "a number", lambda v: type(v) in (int, float) and math.isfinite(v)
    if hint is str:
        return "a string", lambda v: type(v) is str
    if origin in (list, tuple, Sequence, typing.List) or hint in (list, tuple):
        inner_words, inner = _expectation(args[0]) if args else ("anything", lambda v: True)
        plural = inner_words.removeprefix("an ").removeprefix("a ")
        return f"a list of {plural}s", lambda v: type(v) is list and all(inner(item) for item in v)
    if origin in (dict, Mapping, typing.Dict) or hint in (dict, Mapping):
        return "a mapping", lambda v: type(v) is dict
    return "a value", lambda v: True


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
