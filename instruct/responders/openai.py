"""Ask an OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, SGLang, llama.cpp server, Ollama).

Standard library only: ``urllib.request`` for HTTP, a thread pool for ``concurrency`` requests in flight.
A request that meets 429, a 5xx, a timeout or a dropped connection is tried again after an exponential
backoff (``Retry-After`` wins when the server sends one); any other error fails it at once. A failed
request is a reason, never a made-up answer. The API key is read from the environment when a request is
built and put in its header only: it is not kept in the config, and every reason is scrubbed of it.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import orjson
from omegaconf import DictConfig

from instruct.errors import InstructError
from instruct.responders.base import Answer, Request, Responder, endpoint_host

log = logging.getLogger("instruct")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_WAIT_SECONDS = 60.0
_TRANSIENT = (TimeoutError, ConnectionError, http.client.HTTPException, urllib.error.URLError)


class OpenAIResponder(Responder):
    """Args:
        cfg: the ``responder`` config node; uses base_url, api_key_env, concurrency, retries,
            backoff_seconds, timeout_seconds, preflight_timeout_seconds and max_requests besides the
            request parameters.
    """

    name = "openai"

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.base_url = str(cfg.base_url).rstrip("/")
        self.endpoint = endpoint_host(self.base_url)
        self.api_key_env = str(cfg.api_key_env)
        self.concurrency = int(cfg.concurrency)
        self.retries = int(cfg.retries)
        self.backoff = float(cfg.backoff_seconds)
        self.timeout = float(cfg.timeout_seconds)
        self.preflight_timeout = float(cfg.preflight_timeout_seconds)
        self.max_requests = cfg.max_requests
        self.sent = 0  # prompts sent in this process: the budget
        self._lock = threading.Lock()

    # --- before the run ----------------------------------------------------------------------------

    def start(self) -> None:
        """GET /models with a short timeout: an unreachable endpoint, a refused key or an unknown model
        stops the run before anything is written."""
        where = f"{urllib.parse.urlsplit(self.base_url).scheme}://{self.endpoint}"
        if not self._key() and self.endpoint == "api.openai.com":
            raise InstructError(f"responder=openai needs an API key: set the environment variable "
                                f"{self.api_key_env} (or name another with responder.api_key_env=…)")
        try:
            listing = self._call("GET", "/models", None, self.preflight_timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise InstructError(f"LLM endpoint {where} refused the API key (HTTP {exc.code}): set the "
                                    f"environment variable {self.api_key_env} to a valid key") from None
            if exc.code == 404:
                return  # a server without GET /models; the first request will tell
            raise InstructError(f"LLM endpoint {where} answered HTTP {exc.code} to GET {self.base_url}/models "
                                f"(is responder.base_url the /v1 root?)") from None
        except orjson.JSONDecodeError:
            raise InstructError(f"LLM endpoint {where} did not answer GET {self.base_url}/models with JSON "
                                f"(is responder.base_url the /v1 root?)") from None
        except (*_TRANSIENT, OSError, ValueError) as exc:
            raise InstructError(f"LLM endpoint {where} is unreachable "
                                f"({self._reason(exc, self.preflight_timeout)}); start the server or fix "
                                f"responder.base_url") from None
        served = [item.get("id") for item in listing.get("data", []) if isinstance(item, dict)] \
            if isinstance(listing, dict) else []
        if served and self.model not in served:
            raise InstructError(f"LLM endpoint {where} does not serve responder.model={self.model!r}; it serves "
                                f"{', '.join(map(str, served[:10]))}{' …' if len(served) > 10 else ''}")

    # --- answering ---------------------------------------------------------------------------------

    def answer(self, requests: list[Request]) -> dict[str, Answer | str | None]:
        results: dict[str, Answer | str | None] = {}
        to_send = []
        for request in requests:  # in row order, so the budget cuts the same rows every time
            cached = self.cached(request.key)
            if cached is not None:
                results[request.key] = cached
            elif self.max_requests is not None and self.sent >= self.max_requests:
                self.stats["budget_exhausted"] += 1
                results[request.key] = f"request budget exhausted (responder.max_requests={self.max_requests})"
            else:
                self.sent += 1
                to_send.append(request)
        if to_send:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(to_send))) as pool:
                for request, result in zip(to_send, pool.map(self._ask, to_send)):
                    if isinstance(result, Answer):
                        self.stats["answered"] += 1
                        self.count_tokens(result)
                        self.remember(request.key, result)
                    else:
                        self.stats["failures"] += 1
                    results[request.key] = result
        return results

    def _ask(self, request: Request) -> Answer | str:
        """One prompt, with retries: what the model said, or why there is no answer."""
        for attempt in range(self.retries + 1):
            wait = None
            with self._lock:
                self.stats["requests"] += 1
                if attempt:
                    self.stats["retries"] += 1
            try:
                return Answer.from_completion(self._call("POST", "/chat/completions", request.body, self.timeout))
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}" + ("" if exc.code in (401, 403) else self._error_message(exc))
                if exc.code not in RETRYABLE_STATUS:
                    return reason
                wait = _retry_after(exc)
            except (*_TRANSIENT, OSError) as exc:
                reason = self._reason(exc, self.timeout)
            except ValueError as exc:  # a body that is not a chat completion: asking again will not help
                return self._scrub(str(exc))
            if attempt < self.retries:
                time.sleep(min(wait if wait is not None else self.backoff * 2 ** attempt, MAX_WAIT_SECONDS))
        return f"{reason} (after {self.retries + 1} attempts)" if self.retries else reason

    # --- HTTP ----------------------------------------------------------------------------------------

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def _call(self, method: str, path: str, body: dict | None, timeout: float) -> object:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.base_url + path, data=None if body is None else orjson.dumps(body),
                                         headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())

    def _reason(self, exc: BaseException, timeout: float) -> str:
        inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(inner, TimeoutError):
            return f"timeout after {timeout:g} s"
        return self._scrub(f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__)

    def _error_message(self, exc: urllib.error.HTTPError) -> str:
        try:
            error = orjson.loads(exc.read()).get("error")
            message = error.get("message") if isinstance(error, dict) else error
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return ""
        return f": {self._scrub(str(message))[:160]}" if message else ""

    def _scrub(self, text: str) -> str:
        """Servers sometimes echo the key in an error; it must not reach rejects.jsonl or the log."""
        key = self._key()
        return text.replace(key, "***") if key else text


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    try:
        return max(0.0, float(exc.headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None
