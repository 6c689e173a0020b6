"""Merge an OpenAI Batch output file into a new versioned dataset.

The merge runs the pipeline again with the batch run's own config (same inputs, same rows, same requests)
and answers every row from the results file, found by custom_id (= the request's cache key). Answers the
batch run took from the cache come from the cache again. A row whose request failed, or that has no result,
is rejected with its reason, never filled in. Every result is also put in the cache, so a later run with the
same model and prompts asks nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
from omegaconf import DictConfig, OmegaConf

from instruct.errors import InstructError
from instruct.responders.base import Answer, Request, Responder
from instruct.responders.batch import REQUESTS_FILE
from instruct.rundir import MANIFEST, is_complete
from instruct.schema import InstructConfig


def merge_config(cfg: DictConfig) -> tuple[DictConfig, Path]:
    """The config of the merge run and the folder to put it in (beside the batch run).

    Args:
        cfg: the composed config with ``responder=merge``, ``responder.results`` and ``responder.batch_run``
            (or ``resume``) naming the run made with ``responder=batch``.
    """
    # `resume=RUN_DIR` is accepted too (the spelling): a complete batch run cannot be resumed anyway.
    batch_run, results = cfg.responder.batch_run or cfg.resume, cfg.responder.results
    if not batch_run or not results:
        raise InstructError("responder=merge needs responder.batch_run=RUN_DIR (a run made with responder=batch) "
                            "and responder.results=FILE (the Batch output file)")
    run_dir, results_file = Path(batch_run).resolve(), Path(results).resolve()
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file() or not is_complete(run_dir):
        raise InstructError(f"responder.batch_run={batch_run} is not a complete run folder (no manifest.json)")
    if orjson.loads((run_dir / MANIFEST).read_bytes())["config"].get("responder", {}).get("name") != "batch":
        raise InstructError(f"responder.batch_run={batch_run} was not made with responder=batch")
    if not results_file.is_file():
        raise InstructError(f"responder.results={results}: no such file")
    # The schema, not `cfg`, as the base: the batch run's mix may have tasks this command line does not.
    merged = OmegaConf.merge(OmegaConf.structured(InstructConfig), OmegaConf.load(saved))
    merged.workers, merged.progress, merged.resume = cfg.workers, cfg.progress, None
    merged.responder.name = "merge"
    merged.responder.batch_run = str(run_dir)
    merged.responder.results = str(results_file)
    # The results' content, not their path, goes into the version id.
    merged.responder.results_sha256 = hashlib.sha256(results_file.read_bytes()).hexdigest()
    return merged, run_dir.parent


def read_results(path: Path) -> dict[str, Answer | str]:
    """custom_id → Answer, or the reason the request failed. Output and error files may be concatenated."""
    results: dict[str, Answer | str] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
            custom_id = item["custom_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise InstructError(f"{path}:{number}: not a Batch output line (no custom_id)") from None
        results[custom_id] = _result_of(item)
    return results


def _result_of(item: dict) -> Answer | str:
    response, error = item.get("response"), item.get("error")
    if error:
        return f"batch error {error.get('code') or ''}: {error.get('message') or ''}".strip()[:200]
    if not isinstance(response, dict):
        return "batch result without a response"
    status, body = response.get("status_code"), response.get("body")
    if status != 200:
        message = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
        return f"batch HTTP {status}: {message}"[:200]
    try:
        return Answer.from_completion(body)
    except ValueError as exc:
        return str(exc)


class MergeResponder(Responder):
    """Args:
        cfg: the ``responder`` config node of the merge run (see ``merge_config``).
    """

    name = "merge"

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.results_file = Path(cfg.results)
        self.batch_run = Path(cfg.batch_run)
        self.expected_sha256 = cfg.results_sha256

    def start(self) -> None:
        if not self.results_file.is_file():
            raise InstructError(f"responder.results={self.results_file}: no such file")
        if self.expected_sha256 and hashlib.sha256(self.results_file.read_bytes()).hexdigest() != self.expected_sha256:
            raise InstructError(f"{self.results_file} changed since this merge started; start a new merge")
        self.results = read_results(self.results_file)
        requests_file = self.batch_run / REQUESTS_FILE
        self.requested = {orjson.loads(line)["custom_id"] for line in requests_file.read_bytes().splitlines()} \
            if requests_file.exists() else set()

    def answer(self, requests: list[Request]) -> dict[str, Answer | str | None]:
        answers: dict[str, Answer | str | None] = {}
        for request in requests:
            result = self.results.get(request.key)
            if isinstance(result, Answer):
                self.stats["answered"] += 1
                self.count_tokens(result)
                self.remember(request.key, result)
                answers[request.key] = result
                continue
            cached = self.cached(request.key)
            if cached is not None:
                answers[request.key] = cached
                continue
            self.stats["failures"] += 1
            if result is not None:
                answers[request.key] = result
            elif request.key in self.requested:
                answers[request.key] = "no result in the Batch output file"
            else:
                answers[request.key] = "not among the batch run's requests (its inputs or config changed?)"
        return answers
