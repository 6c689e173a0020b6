"""The LLM responder against a small deterministic OpenAI-protocol server on 127.0.0.1 (started per test).

The server answers each prompt with a text derived from the prompt's sha256, so every expected response is
known; it can answer 429/503 first, sleep past the client's timeout, refuse, answer empty, echo the API key
in an error, and it counts the requests it has in flight at once.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from conftest import ROOT, compose_config, manifest_of, read_jsonl, run_pipeline

from instruct.errors import InstructError
from instruct.pipeline import generate
from instruct.responders import merge_config
from instruct.responders.base import Answer
from instruct.responders.openai import OpenAIResponder
from instruct.schema import versioned_config

SECRET = "sk-test-6f1d0c9e-SECRET-do-not-store"
KEY_ENV = "INSTRUCT_TEST_LLM_KEY"
MODEL = "test-model"
REFUSAL = "I'm sorry, but I can't help with that."


def digest(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def reply(prompt: str) -> str:
    """The server's answer to a prompt: a pure function of it."""
    return f"LLM answer {digest(prompt)[:12]}: {' '.join(prompt.split()[-5:])}"


def picked(prompt: str, salt: str, one_in: int) -> bool:
    """A deterministic selection of about one prompt in ``one_in``."""
    return int(hashlib.sha256((salt + prompt).encode()).hexdigest()[:8], 16) % one_in == 0


def completion(body: dict, content: str | None) -> dict:
    prompt = body["messages"][-1]["content"]
    tokens = len(prompt.split())
    return {"id": "chatcmpl-" + digest(prompt)[:8], "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": tokens, "completion_tokens": 7, "total_tokens": tokens + 7}}


class FakeLLM:
    """Knobs (set before the run): fail_first/fail_status, sleep (prompt → bool), refuse, empty, echo_key
    (prompt → bool: a 400 whose message contains the key), hold (wait until this many requests are in flight,
    at most 0.5 s, so the test sees the client's real concurrency)."""

    def __init__(self, key: str | None = SECRET):
        self.key = key
        self.fail_first, self.fail_status = 0, 429
        self.sleep = self.refuse = self.empty = self.echo_key = lambda prompt: False
        self.hold = 0
        self.posts = self.active = self.max_active = self.tokens = 0
        self.prompts: list[str] = []
        self.cond = threading.Condition()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def authorized(self) -> bool:
                if owner.key and self.headers.get("Authorization") != f"Bearer {owner.key}":
                    self.send(401, {"error": {"message": "Incorrect API key provided"}})
                    return False
                return True

            def do_GET(self):
                if self.authorized():
                    self.send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

            def do_POST(self):
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.authorized():
                    return
                with owner.cond:
                    owner.posts += 1
                    number = owner.posts
                    owner.active += 1
                    owner.max_active = max(owner.max_active, owner.active)
                    owner.cond.notify_all()
                    owner.cond.wait_for(lambda: owner.active >= owner.hold, timeout=0.5 if owner.hold else 0)
                if owner.hold:
                    threading.Event().wait(0.05)  # room for any request beyond the limit to show up
                try:
                    reply_args = owner.answer(body, number)
                finally:
                    with owner.cond:  # before the reply, so the client's next request cannot overlap this one
                        owner.active -= 1
                self.send(*reply_args)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client that timed out is not an error
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body: dict, number: int) -> tuple:
        """(status, payload, headers) for a POST."""
        prompt = body["messages"][-1]["content"]
        if number <= self.fail_first:
            return self.fail_status, {"error": {"message": "slow down"}}, {"Retry-After": "0"}
        if self.sleep(prompt):
            threading.Event().wait(1.5)
        if self.echo_key(prompt):
            return 400, {"error": {"message": f"bad request for key {self.key}"}}
        content = REFUSAL if self.refuse(prompt) else "" if self.empty(prompt) else reply(prompt)
        result = completion(body, content)
        with self.cond:
            self.prompts.append(prompt)
            self.tokens += result["usage"]["total_tokens"]
        return 200, result

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """urllib honours HTTP(S)_PROXY; the fake server is local."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def llm(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    server = FakeLLM()
    yield server
    server.close()


def llm_args(server: FakeLLM, tmp_path: Path, *extra: str, responder: str = "openai") -> list[str]:
    """Completion rows (a task already in the tree) answered by the fake server, a small sample."""
    return [f"responder={responder}", f"responder.base_url={server.url}", f"responder.model={MODEL}",
            f"responder.api_key_env={KEY_ENV}", f"responder.cache_dir={tmp_path / 'cache'}",
            "responder.tasks=[completion]", "responder.backoff_seconds=0.01", "source.max_chains_per_cluster=30",
            *extra]


def data_rows(run_dir: Path) -> list[dict]:
    return [row for path in sorted((run_dir / "train").glob("*.jsonl")) for row in read_jsonl(path)]


def data_bytes(run_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((run_dir / "train").glob("*.jsonl"))}


def prompt_of(row: dict) -> str:
    return row["messages"][0]["content"]


def llm_rows(run_dir: Path) -> list[dict]:
    return [row for row in data_rows(run_dir) if row["task"] == "completion"]


# --- answers, refusals, counts ---------------------------------------------------------------------


def refusal_kind(prompt: str) -> int:
    """0: the fake server refuses the prompt, 1: it answers empty, 2: it answers. One in three each, so every
    kind occurs among the run's 15 prompts whatever the templates' wording (1 in 6 once left none empty)."""
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 3


def test_llm_answers_replace_responses_and_bad_answers_are_rejected(llm, tmp_path):
    llm.refuse = lambda prompt: refusal_kind(prompt) == 0
    llm.empty = lambda prompt: refusal_kind(prompt) == 1
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path))
    manifest = manifest_of(run)
    rows = data_rows(run)
    answered = [row for row in rows if row["task"] == "completion"]
    refused = [p for p in llm.prompts if refusal_kind(p) == 0]
    empty = [p for p in llm.prompts if refusal_kind(p) == 1]
    assert answered and refused and empty
    for row in rows:
        source = "llm" if row["task"] == "completion" else ("dolly" if row["task"] == "dolly" else "data")
        if source != "dolly":
            assert row["meta"]["response_source"] == source
    for row in answered:  # every LLM row holds exactly the server's answer to its prompt, never a stand-in
        assert row["messages"][1]["content"] == reply(prompt_of(row))
    assert len(answered) == len(llm.prompts) - len(refused) - len(empty)
    section = manifest["responder"]
    assert section["name"] == "openai" and section["model"] == MODEL
    assert section["endpoint_host"] == f"127.0.0.1:{llm.server.server_address[1]}"
    assert section["requests"] == section["answered"] == section["prompts"] == llm.posts
    assert section["refusals"] == len(refused) and section["empty"] == len(empty)
    assert section["rows_llm"] == len(answered) and section["tokens"]["total_tokens"] == llm.tokens
    assert manifest["counts"]["per_task"]["completion"]["produced"] == len(answered)
    assert manifest["counts"]["generated"] == len([row for row in rows if row["task"] != "dolly"])
    reasons = [r["reason"] for r in read_jsonl(run / "rejects.jsonl")]
    assert reasons.count("llm: refusal") == len(refused) and reasons.count("llm: empty response") == len(empty)
    assert "written by the LLM `test-model`" in (run / "README.md").read_text()


def test_concurrency_limit_is_respected_and_reached(llm, tmp_path):
    llm.hold = 3
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "responder.concurrency=3"))
    assert manifest_of(run)["responder"]["requests"] > 3
    assert llm.max_active == 3


@pytest.mark.parametrize("status", [429, 503])
def test_retries_with_backoff_on_429_and_5xx(llm, tmp_path, status):
    llm.fail_first, llm.fail_status = 2, status
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "responder.retries=3", "responder.concurrency=1"))
    section = manifest_of(run)["responder"]
    assert section["retries"] == 2 and section["failures"] == 0
    assert section["requests"] == section["prompts"] + 2 == llm.posts
    assert len(llm_rows(run)) == section["prompts"]


def test_retries_exhausted_reject_rows(llm, tmp_path):
    llm.fail_first = 10_000
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "responder.retries=1"))
    section = manifest_of(run)["responder"]
    assert llm_rows(run) == [] and section["failures"] == section["prompts"] > 0
    assert section["requests"] == 2 * section["prompts"]
    assert {r["reason"] for r in read_jsonl(run / "rejects.jsonl")} == {"llm: HTTP 429: slow down (after 2 attempts)"}


def test_timeout_is_a_failure_not_a_placeholder(llm, tmp_path):
    llm.sleep = lambda prompt: picked(prompt, "sleep", 4)
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "responder.timeout_seconds=0.3", "responder.retries=0"))
    section = manifest_of(run)["responder"]
    rows = llm_rows(run)
    assert section["failures"] > 0 and section["answered"] == len(rows) > 0
    assert section["failures"] + section["answered"] == section["prompts"]
    assert not any(picked(prompt_of(row), "sleep", 4) for row in rows)
    assert all(row["messages"][1]["content"] == reply(prompt_of(row)) for row in rows)
    timeouts = [r for r in read_jsonl(run / "rejects.jsonl") if r["reason"] == "llm: timeout after 0.3 s"]
    assert len(timeouts) == section["rows_rejected"] > 0


def test_request_budget_rejects_the_rest(llm, tmp_path):
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "responder.max_requests=3"))
    section = manifest_of(run)["responder"]
    assert section["requests"] == llm.posts == 3 and len(llm_rows(run)) == 3
    assert section["budget_exhausted"] == section["prompts"] - 3 > 0


# --- cache and determinism ----------------------------------------------------------------------------


def test_rerun_is_answered_from_the_cache_with_identical_bytes(llm, tmp_path):
    first = run_pipeline(tmp_path, *llm_args(llm, tmp_path))
    asked = llm.posts
    assert asked == manifest_of(first)["responder"]["prompts"] > 0
    second = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "workers=2"))
    section = manifest_of(second)["responder"]
    assert llm.posts == asked and section["requests"] == 0 and section["cache_hits"] == section["prompts"]
    assert data_bytes(second) == data_bytes(first)
    # A sweep over the Dolly fraction asks nothing either.
    swept = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "mix.dolly_fraction=0.1"))
    assert llm.posts == asked and len(llm_rows(swept)) == len(llm_rows(first))


def test_sidecar_format_stays_line_for_line(llm, tmp_path):
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "output=blueprint"))
    for data in sorted((run / "train").glob("cluster_*[0-9].jsonl")):
        lines, metas = read_jsonl(data), read_jsonl(run / "meta" / "train" / data.name)
        assert len(lines) == len(metas)
        for turns, meta in zip(lines, metas):
            if meta["task"] == "completion":
                assert meta["response_source"] == "llm"
                assert orjson.loads(turns[-1]["content"])["text"] == reply(turns[0]["content"])


# --- batch export and merge -------------------------------------------------------------------------


def batch_output(requests_file: Path, fail: set[str] = frozenset()) -> bytes:
    """What the Batch API returns for the requests: the fake server's answers, errors for ``fail``."""
    out = []
    for line in requests_file.read_bytes().splitlines():
        request = orjson.loads(line)
        if request["custom_id"] in fail:
            out.append({"id": "batch_req_x", "custom_id": request["custom_id"], "response": None,
                        "error": {"code": "server_error", "message": "the model crashed"}})
        else:
            body = completion(request["body"], reply(request["body"]["messages"][-1]["content"]))
            out.append({"id": "batch_req_x", "custom_id": request["custom_id"],
                        "response": {"status_code": 200, "request_id": "req_x", "body": body}, "error": None})
    return b"".join(orjson.dumps(item) + b"\n" for item in out)


def merge(tmp_path: Path, batch_run: Path, results: Path, key: str = "responder.batch_run") -> Path:
    cfg, parent = merge_config(compose_config("progress=false", "responder=merge", f"{key}={batch_run}",
                                              f"responder.results={results}"))
    return generate(cfg, parent)


def test_batch_export_then_merge_equals_a_live_run(llm, tmp_path):
    live = run_pipeline(tmp_path, *llm_args(llm, tmp_path))
    batch = run_pipeline(tmp_path, *llm_args(llm, tmp_path / "fresh", responder="batch"))
    manifest = manifest_of(batch)
    requests = read_jsonl(batch / "llm_requests.jsonl")
    assert requests and all(r["method"] == "POST" and r["url"] == "/v1/chat/completions" for r in requests)
    assert all(r["body"]["model"] == MODEL and r["body"]["messages"][-1]["role"] == "user" for r in requests)
    assert len({r["custom_id"] for r in requests}) == len(requests)
    assert manifest["pending"] == manifest["responder"]["pending"] == len(llm_rows(live)) > 0
    assert llm_rows(batch) == [] and (batch / "pending").is_dir()

    # A Batch output with one failed request first (before the full merge fills the cache with answers).
    results = tmp_path / "batch_output.jsonl"
    failed = requests[0]["custom_id"]
    results.write_bytes(batch_output(batch / "llm_requests.jsonl", fail={failed}))
    partial = merge(tmp_path, batch, results, key="resume")  # the spelling works too
    section = manifest_of(partial)["responder"]
    assert partial != batch and partial.parent == batch.parent and section["failures"] == 1
    lost = [row for row in llm_rows(live) if prompt_of(row) == requests[0]["body"]["messages"][-1]["content"]]
    assert len(llm_rows(partial)) == len(llm_rows(live)) - len(lost)
    reasons = [r["reason"] for r in read_jsonl(partial / "rejects.jsonl")]
    assert reasons.count("llm: batch error server_error: the model crashed") == len(lost) == section["rows_rejected"]

    results.write_bytes(batch_output(batch / "llm_requests.jsonl"))
    merged = merge(tmp_path, batch, results)
    assert merged not in (batch, partial)
    assert manifest_of(merged)["pending"] == 0 and manifest_of(merged)["responder"]["name"] == "merge"
    assert data_bytes(merged) == data_bytes(live)  # same answers, same bytes


def test_merge_needs_a_batch_run(tmp_path):
    with pytest.raises(InstructError, match="responder.batch_run"):
        merge_config(compose_config("responder=merge"))
    plain = run_pipeline(tmp_path, "source.max_chains_per_cluster=5")
    (tmp_path / "r.jsonl").write_bytes(b"")
    with pytest.raises(InstructError, match="not made with responder=batch"):
        merge(tmp_path, plain, tmp_path / "r.jsonl")


# --- secrets and failing fast -------------------------------------------------------------------------


def test_secret_is_in_no_file_of_the_run(llm, tmp_path):
    llm.echo_key = lambda prompt: picked(prompt, "echo", 3)
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path))
    batch = run_pipeline(tmp_path, *llm_args(llm, tmp_path, responder="batch"))
    assert llm.posts > 0  # the key was sent (the server answers 401 without it)
    assert any(r["reason"].startswith("llm: HTTP 400: bad request for key ***") for r in read_jsonl(run / "rejects.jsonl"))
    files = [path for folder in (run, batch, tmp_path / "cache") for path in folder.rglob("*") if path.is_file()]
    assert len(files) > 10
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_fails_fast_with_one_line(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(InstructError, match="unreachable") as error:
        run_pipeline(tmp_path, "responder=openai", f"responder.base_url={url}", "responder.tasks=[completion]",
                     f"responder.cache_dir={tmp_path / 'cache'}")
    assert "\n" not in str(error.value) and url.rsplit("/", 1)[0] in str(error.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    done = subprocess.run([sys.executable, "run.py", "responder=openai", f"responder.base_url={url}",
                           "responder.tasks=[completion]", f"output_root={tmp_path / 'cli'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: LLM endpoint")


def test_missing_key_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    server = FakeLLM()
    try:
        with pytest.raises(InstructError, match=f"refused the API key.*{KEY_ENV}"):
            run_pipeline(tmp_path, *llm_args(server, tmp_path))
    finally:
        server.close()


def test_unknown_model_fails_fast(llm, tmp_path):
    with pytest.raises(InstructError, match="does not serve responder.model='other'"):
        run_pipeline(tmp_path, *llm_args(llm, tmp_path, "responder.model=other"))


# --- config and judging -------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["none", "openai", "batch", "merge"])
def test_every_responder_option_composes(option):
    assert compose_config(f"responder={option}").responder.name == option


def test_default_is_none_and_rows_come_from_the_data(tmp_path):
    run = run_pipeline(tmp_path, "source.max_chains_per_cluster=10")
    manifest = manifest_of(run)
    assert manifest["config"]["responder"]["name"] == "none" and manifest["pending"] == 0
    assert {row["meta"]["response_source"] for row in data_rows(run) if row["task"] != "dolly"} == {"data"}


def test_version_ignores_how_answers_are_fetched():
    base = versioned_config(compose_config("responder=openai"))
    assert versioned_config(compose_config("responder=openai", "responder.concurrency=2",
                                           "responder.cache_dir=/elsewhere")) == base
    assert versioned_config(compose_config("responder=openai", "responder.model=other")) != base
    assert versioned_config(compose_config("responder.model=other")) == versioned_config(compose_config())


@pytest.mark.parametrize("text, finish, accepted", [
    ("A fine summary of the thread.", "stop", True),
    ("I can't believe it rained again today.", "stop", True),      # a paraphrase, not a refusal
    ("I'm sorry for your loss, it was a great dog.", "stop", True),
    (REFUSAL, "stop", False),
    ("I cannot determine the user's voting intention.", "stop", False),
    ("As an AI, I have no opinion.", "stop", False),
    ("   ", "stop", False),
    ("A summary that was cut", "length", False),
])
def test_judge(text, finish, accepted):
    responder = OpenAIResponder(compose_config("responder=openai").responder)
    response, reason = responder.judge(Answer(text=text, finish_reason=finish))
    assert (response is not None) == accepted and (reason is None) == accepted


def test_llm_writes_what_the_data_cannot_give_voting_without_labels_and_paraphrase_without_partner(llm, tmp_path):
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path), "tasks=all", "responder.tasks=[voting_intention,paraphrase]",
                       "source.max_chains_per_cluster=60", "mix=none")
    manifest = manifest_of(run)
    per_task = manifest["counts"]["per_task"]
    assert "infers" in manifest["tasks"]["voting_intention"]["status"]
    assert per_task["voting_intention"]["declined"].get("not applicable: no labels", 0) == 0
    assert "no paraphrase partner" not in per_task["paraphrase"]["declined"]
    rows = [row for row in data_rows(run) if row["task"] in ("voting_intention", "paraphrase")]
    assert {row["task"] for row in rows} == {"voting_intention", "paraphrase"}
    for row in rows:
        assert row["meta"]["response_source"] == "llm"
        assert row["messages"][1]["content"] == reply(prompt_of(row))


# --- instruction backtranslation (topic_post) ------------------------------------------------------------

TOPIC_ONLY = ("tasks=paper", "~tasks.needle", "~tasks.keyword_post", "~tasks.completion",
              "+task@tasks.topic_post=topic_post", "responder.tasks=[topic_post]", "mix=none")


def topic_rows(run_dir: Path) -> list[dict]:
    return [row for row in data_rows(run_dir) if row["task"] == "topic_post"]


def test_topic_post_backtranslation_the_model_names_the_topic_the_post_stays(llm, tmp_path):
    from instruct.responders.backtranslation import topic_phrase
    from instruct.tasks.topic_post import TOPIC_QUESTION
    from instruct.templates import TemplateSet
    from instruct.text import words

    llm.refuse = lambda prompt: picked(prompt, "refuse", 7)
    llm.empty = lambda prompt: picked(prompt, "empty", 8) and not picked(prompt, "refuse", 7)
    # The fake answers with the prompt's last five words: for a post of at most five words that is the post.
    copies = lambda prompt: " ".join(words(prompt.removeprefix(TOPIC_QUESTION).lower())) in \
        " ".join(words(reply(prompt).lower()))
    run = run_pipeline(tmp_path, *llm_args(llm, tmp_path), *TOPIC_ONLY)
    rows = topic_rows(run)
    templates = {t.id: t for t in TemplateSet("default").variants("topic_post", {"default": _topic_slots()})["default"]}
    asked = {prompt.removeprefix(TOPIC_QUESTION): prompt for prompt in llm.prompts}
    assert rows and all(prompt.startswith(TOPIC_QUESTION) for prompt in llm.prompts)
    for row in rows:
        post = row["messages"][1]["content"]
        question = asked[post]  # the model was asked about this very post, which stays the response
        assert row["meta"]["instruction_source"] == "llm" and row["meta"]["response_source"] == "data"
        topic = topic_phrase(reply(question))
        assert prompt_of(row) == templates[row["meta"]["template_id"]].render({"topic": topic})
        assert post not in prompt_of(row)
    refused = [p for p in llm.prompts if picked(p, "refuse", 7)]
    empty = [p for p in llm.prompts if picked(p, "empty", 8) and not picked(p, "refuse", 7)]
    copied = [p for p in llm.prompts if p not in refused and p not in empty and copies(p)]
    assert refused and empty and copied
    assert len(rows) == len(llm.prompts) - len(refused) - len(empty) - len(copied)
    reasons = [r["reason"] for r in read_jsonl(run / "rejects.jsonl")]
    assert reasons.count("llm: refusal") == len(refused) and reasons.count("llm: empty response") == len(empty)
    assert reasons.count("llm: topic answer repeats the post") == len(copied)
    section = manifest_of(run)["responder"]
    assert section["rows_llm_instruction"] == len(rows) and section["rows_llm"] == 0
    assert section["instruction_tasks"] == ["topic_post"]
    assert manifest_of(run)["counts"]["per_task"]["topic_post"]["produced"] == len(rows)
    assert "the LLM wrote the instruction instead" in (run / "README.md").read_text()

    # The cache answers a rerun with any worker count, byte for byte.
    posts = llm.posts
    again = run_pipeline(tmp_path, *llm_args(llm, tmp_path, "workers=2"), *TOPIC_ONLY)
    assert llm.posts == posts and data_bytes(again) == data_bytes(run)


def _topic_slots():
    from instruct.tasks.topic_post import TopicPostTask
    return TopicPostTask.slots["default"]


def test_topic_post_backtranslation_through_batch_and_merge(llm, tmp_path):
    live = run_pipeline(tmp_path, *llm_args(llm, tmp_path), *TOPIC_ONLY)
    batch = run_pipeline(tmp_path, *llm_args(llm, tmp_path / "fresh", responder="batch"), *TOPIC_ONLY)
    rejected = manifest_of(live)["responder"]["rows_rejected"]  # answers that repeat a short post
    assert topic_rows(batch) == [] and manifest_of(batch)["pending"] == len(topic_rows(live)) + rejected > 0
    results = tmp_path / "batch_output.jsonl"
    results.write_bytes(batch_output(batch / "llm_requests.jsonl"))
    merged = merge(tmp_path, batch, results)
    assert data_bytes(merged) == data_bytes(live)


def test_without_an_llm_topic_post_keeps_its_offline_topics(tmp_path):
    run = run_pipeline(tmp_path, *TOPIC_ONLY[:-2], "mix=none", "source.max_chains_per_cluster=30")
    rows = topic_rows(run)
    assert rows and {(r["meta"]["instruction_source"], r["meta"]["response_source"]) for r in rows} == {("data", "data")}


@pytest.mark.parametrize("answer, topic", [
    ("Social Security", "Social Security"),
    ('Topic: "creature comforts".', "creature comforts"),
    ("The topic of this post is NHL trade rumors.", "NHL trade rumors"),
    ("**Golf**", "Golf"),
    ("It is about golf.\nMore precisely, a golf shot.", None),
    ("This post talks at length about the many ways in which the speaker feels the weather is bad today", None),
    ('""', None),
])
def test_topic_phrase(answer, topic):
    from instruct.responders.backtranslation import topic_phrase
    assert topic_phrase(answer) == topic
