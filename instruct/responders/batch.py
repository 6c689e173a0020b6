"""Export the requests as an OpenAI Batch API input file instead of asking now.

Cached answers are used at once; every other row waits in ``<run>/pending/<cluster>.jsonl`` and its request
goes, once per distinct prompt, into ``<run>/llm_requests.jsonl``::

    {"custom_id": "<sha256 of the body>", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

The custom_id is the cache key, so ``responder=merge`` finds each answer again by the request alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson

from instruct.responders.base import Answer, Request, Responder
from instruct.rundir import atomic_open

log = logging.getLogger("instruct")

REQUESTS_FILE = "llm_requests.jsonl"
PENDING_DIR = "pending"
BATCH_URL = "/v1/chat/completions"


class BatchResponder(Responder):
    """Args:
        cfg: the ``responder`` config node (model, parameters, tasks, cache_dir).
    """

    name = "batch"

    def answer(self, requests: list[Request]) -> dict[str, Answer | str | None]:
        return {request.key: self.cached(request.key) for request in requests}

    def finish(self, run_dir: Path, clusters: list[str]) -> dict:
        """Write llm_requests.jsonl from the pending rows of every cluster, one line per distinct request."""
        seen: set[str] = set()
        with atomic_open(run_dir / REQUESTS_FILE) as out:
            for cluster in clusters:
                path = run_dir / PENDING_DIR / f"{cluster}.jsonl"
                if not path.exists():
                    continue
                for line in path.read_bytes().splitlines():
                    item = orjson.loads(line)
                    if item["custom_id"] in seen:
                        continue
                    seen.add(item["custom_id"])
                    out.write(orjson.dumps({"custom_id": item["custom_id"], "method": "POST", "url": BATCH_URL,
                                            "body": item["request"]}) + b"\n")
        if seen:
            log.info("%d requests written to %s: run them with the OpenAI Batch API, then merge the output with "
                     "python run.py responder=merge responder.batch_run=%s responder.results=<batch output file>",
                     len(seen), run_dir / REQUESTS_FILE, run_dir)
        return {"requests_file": REQUESTS_FILE, "exported": len(seen)}
