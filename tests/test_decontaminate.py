"""Decontamination (instruct/filters/decontaminate.py): a thread or Dolly row that shares an evaluation id or a
13-word n-gram with an evaluation set never reaches a row; every removal is in contamination.jsonl and counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import ROOT, compose_config, data_files, manifest_of, read_jsonl, rows_of, run_pipeline

from instruct.errors import InstructError
from instruct.filters import decontaminate, normalize
from instruct.filters.decontaminate import Decontaminator
from instruct.filters.ngramhash import HashSet
from instruct.pipeline import NOT_DECONTAMINATED, generate
from instruct.records import Message, Thread

EVAL_SAMPLE = ROOT.parent / "shared" / "data" / "blueprint-eval-sample"
EVAL_TEXT = ("the city council voted late on tuesday to close the riverside branch library for good and "
             "residents are already planning a protest")


@pytest.fixture
def blueprint_eval() -> list[str]:
    if not EVAL_SAMPLE.is_dir():
        pytest.skip("../shared/data/blueprint-eval-sample is not beside this checkout")
    return [str(EVAL_SAMPLE / "batchinput.jsonl"), str(EVAL_SAMPLE / "solutions.json")]


def _paths(paths: list) -> str:
    return "decontaminate.paths=[" + ",".join(str(p) for p in paths) + "]"


def _thread(*texts: str, thread_id: str = "t1", with_id: bool = True) -> Thread:
    messages = tuple(Message(f"u{i}", float(i), text, None) for i, text in enumerate(texts))
    return Thread(thread_id, "cluster_0", 1, messages, {"id": thread_id} if with_id else {})


def _jsonl(path: Path, records: list) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_the_real_sample_is_removed_whole_by_its_evaluation_files(tmp_path, shared_sample, blueprint_eval):
    run = run_pipeline(tmp_path, f"source.path={shared_sample / 'released'}", "tasks=all", "mix=none",
                       "source.max_chains_per_cluster=null", _paths(blueprint_eval))
    manifest = manifest_of(run)
    assert manifest["counts"]["filtered"] == 400 and manifest["counts"]["threads_used"] == 0
    assert rows_of(run) == []
    records = read_jsonl(run / "contamination.jsonl")
    assert len(records) == 400
    assert all(r["thread_id"] == r["eval_id"] and r["match"] == "id" for r in records)  # custom_id == thread id
    assert {f["removed"] for f in manifest["filters"]["decontaminate"]["eval_files"]} == {400, 0}
    assert manifest["filters"]["removed_per_cluster"] == {"cluster_0": {"decontaminated: id": 200},
                                                          "cluster_1": {"decontaminated: id": 200}}
    card = (run / "README.md").read_text()
    assert "## Filters" in card and "`batchinput.jsonl` (400 removed)" in card and "400 decontaminated: id" in card


def test_the_raw_shape_has_no_ids_and_is_found_by_its_text(tmp_path, shared_sample, blueprint_eval):
    """The intermediate shape carries no thread id: only the texts can tell. 397 of its 400 threads are found
    (the other 3 are single posts of 1-3 words, too short to tell from any other)."""
    run = run_pipeline(tmp_path, f"source.path={shared_sample / 'raw'}", "mix=none", _paths(blueprint_eval))
    records = read_jsonl(run / "contamination.jsonl")
    assert len(records) == manifest_of(run)["counts"]["filtered"] == 397
    lines = {c: (shared_sample / "raw" / f"{c}.jsonl").read_bytes().splitlines() for c in ("cluster_0", "cluster_1")}
    for record in records:  # every reported n-gram really is in the thread it removed
        thread_words = " ".join(normalize.words(" ".join(m.get("text") or "" for m in
                                                         orjson.loads(lines[record["cluster"]][record["line"] - 1]))))
        assert record["ngram"] in thread_words


def test_the_bundled_sample_loses_nothing_and_keeps_its_bytes(tmp_path, blueprint_eval):
    plain = run_pipeline(tmp_path / "a")
    cleaned = run_pipeline(tmp_path / "b", _paths(blueprint_eval))
    assert manifest_of(cleaned)["counts"]["filtered"] == 0
    assert (cleaned / "contamination.jsonl").read_bytes() == b""
    assert data_files(plain) == data_files(cleaned)
    assert manifest_of(plain)["version_id"] != manifest_of(cleaned)["version_id"]


def test_a_run_over_other_data_than_the_bundled_sample_says_it_was_not_decontaminated(tmp_path):
    # BluePrint's released files hold its evaluation threads: a run over them without decontamination says so
    # in the log, and one with it (or over the bundled sample, invented posts) does not.
    data = tmp_path / "blueprint"
    data.mkdir()
    (data / "cluster_0.jsonl").write_bytes((ROOT / "data" / "sample" / "cluster_0.jsonl").read_bytes())
    evaluation = _jsonl(tmp_path / "eval.jsonl", [{"text": EVAL_TEXT}])
    logs = {}
    for name, overrides in {"own data": [f"source.path={data}"],
                            "own data, decontaminated": [f"source.path={data}", _paths([evaluation])],
                            "bundled sample": []}.items():
        run = run_pipeline(tmp_path / name.replace(" ", "_").replace(",", ""), "mix=none", *overrides)
        logs[name] = (run / "run.log").read_text(encoding="utf-8")
    assert NOT_DECONTAMINATED in logs["own data"]
    assert NOT_DECONTAMINATED not in logs["own data, decontaminated"] + logs["bundled sample"]


def test_an_evaluation_text_split_across_two_messages_is_found(tmp_path):
    words = EVAL_TEXT.split()
    index = Decontaminator.load([str(_jsonl(tmp_path / "eval.jsonl", [{"text": EVAL_TEXT}]))], 13, "text")
    # the training thread says it in two messages, the evaluation in one
    assert index.match_thread(_thread(" ".join(words[:7]), " ".join(words[7:]), with_id=False)).by == "ngram"
    # the evaluation says it in two messages (a Batch request), the training thread in one
    batch = [{"custom_id": "task-9-1", "body": {"messages": [
        {"role": "system", "content": "system:\nYou are a user."},
        {"role": "user", "content": "user0:\n" + orjson.dumps({"text": " ".join(words[:6])}).decode()},
        {"role": "user", "content": "user1:\n" + orjson.dumps({"text": " ".join(words[6:])}).decode()}]}}]
    index = Decontaminator.load([str(_jsonl(tmp_path / "batchinput.jsonl", batch))], 13, "text")
    match = index.match_thread(_thread(EVAL_TEXT, thread_id="other"))
    assert match.eval_id == "task-9-1" and len(match.ngram.split()) == 13
    assert index.match_thread(_thread("the city council voted", thread_id="other")) is None


def test_texts_are_compared_after_unicode_case_punctuation_and_space_normalisation(tmp_path):
    index = Decontaminator.load([str(_jsonl(tmp_path / "eval.jsonl", [{"text": EVAL_TEXT}]))], 13, "text")
    disguised = ("ＴＨＥ City-Council voted, late on  Tuesday…\nto close the “Riverside” branch library — for "
                 "GOOD!! and residents are already planning a protest 🙂")
    assert index.match_thread(_thread(disguised)) is not None
    assert normalize.words("ＣＡＦＥ’S\tnew_line…") == ["cafe", "s", "new", "line"]
    # one changed word in every run of 13 words: no shared n-gram, nothing removed
    changed = EVAL_TEXT.split()
    for at in (5, 11, 17):
        changed[at] = "zebra"
    assert index.match_thread(_thread(" ".join(changed))) is None


def test_short_texts_match_only_as_a_whole(tmp_path):
    index = Decontaminator.load([str(_jsonl(tmp_path / "eval.jsonl", [{"text": "Lovely sunset over the bay"}]))],
                                13, "text", short_words=4)
    assert index.match_thread(_thread("lovely sunset over the BAY!")).by == "text"
    assert index.match_thread(_thread("A lovely sunset over the bay tonight")) is None
    assert Decontaminator.load([str(tmp_path / "eval.jsonl")], 13, "text", short_words=0).match_thread(
        _thread("lovely sunset over the bay")) is None


def test_dolly_rows_are_checked_and_listed(tmp_path, dolly_file):
    rows = read_jsonl(dolly_file)
    evaluation = _jsonl(tmp_path / "eval.jsonl", [{"id": "e1", "question": rows[3]["instruction"] + " " +
                                                   rows[3]["response"]}])
    run = run_pipeline(tmp_path, f"dolly.path={dolly_file}", _paths([evaluation]),
                       "decontaminate.text_field=question", "decontaminate.short_words=0")
    manifest = manifest_of(run)
    removed = manifest["filters"]["removed_dolly"]["decontaminated: ngram"]
    assert removed >= 1 and manifest["inputs"]["dolly"]["rows"] == len(rows) - removed
    dolly_records = [r for r in read_jsonl(run / "contamination.jsonl") if r["cluster"] is None]
    assert 4 in {r["line"] for r in dolly_records} and {r["eval_id"] for r in dolly_records} == {"e1"}
    assert rows[3]["response"] not in {row["messages"][1]["content"] for row in rows_of(run)}


def test_dolly_rows_are_checked_in_one_batch_exactly_as_one_by_one(tmp_path):
    """clean_dolly checks every Dolly row in one batch (match_many): the same rows and matches as the
    definition (match_texts on each row's instruction, context and response), with n-grams across the fields
    and short fields matched as a whole."""
    from instruct.dolly import DollySource
    from instruct.filters.build import Filters

    rows = read_jsonl(ROOT / "data" / "sample" / "dolly.jsonl")
    with_context = next(row for row in rows if row["context"])
    across = " ".join((with_context["context"].split()[-6:] + with_context["response"].split())[:13])
    short = next(row["instruction"] for row in rows if 4 <= len(normalize.words(row["instruction"])) < 13)
    evaluation = _jsonl(tmp_path / "eval.jsonl", [{"id": "across", "text": across}, {"id": "short", "text": short},
                                                  {"id": "whole", "text": rows[-1]["response"]}])
    cfg = compose_config(_paths([evaluation]), "dedup=none")
    filters = Filters.from_config(cfg, [])
    dolly = DollySource.load(ROOT / "data" / "sample" / "dolly.jsonl")
    expected = {row.line: filters.stage.decontaminator.match_texts([row.instruction, row.context, row.response])
                for row in dolly.rows}
    filters.clean_dolly(dolly)
    found = {record["line"]: (record["eval_id"], record["match"], record["ngram"])
             for record in filters.dolly_contamination}
    assert found == {line: (match.eval_id, match.by, match.ngram) for line, match in expected.items() if match}
    assert {"across", "short", "whole"} <= {eval_id for eval_id, _, _ in found.values()}
    assert {row.line for row in dolly.rows} == {line for line, match in expected.items() if match is None}


def test_cluster_files_count_their_ids_only_when_records_have_one(tmp_path):
    released = _jsonl(tmp_path / "cluster_7.jsonl", [{"thread": [{"user_id": "a", "text": "hi there"}], "id": "x-1"}])
    listed = _jsonl(tmp_path / "raw_7.jsonl", [[{"user_id": "a", "text": "hi there"}]])
    index = Decontaminator.load([str(released), str(listed)], 13, "text")
    assert index.match_thread(_thread("something else", thread_id="x-1")).by == "id"
    assert index.match_thread(_thread("something else", thread_id="raw_7:1")) is None
    assert [f.shape for f in index.files] == ["cluster", "cluster"]


def test_a_missing_or_unreadable_evaluation_file_fails_at_start_naming_it(tmp_path):
    missing = tmp_path / "nowhere" / "batchinput.jsonl"
    with pytest.raises(InstructError, match=r"evaluation file not found: .*nowhere/batchinput\.jsonl"):
        generate(compose_config("progress=false", _paths([missing])), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    wrong_field = _jsonl(tmp_path / "eval.jsonl", [{"prompt": "x"}])
    with pytest.raises(InstructError, match=r"eval\.jsonl line 1: .*text_field='text'"):
        generate(compose_config("progress=false", _paths([wrong_field])), tmp_path / "out")
    broken = tmp_path / "solutions.json"
    broken.write_text("{not json")
    with pytest.raises(InstructError, match=r"solutions\.json is not valid JSON"):
        generate(compose_config("progress=false", _paths([broken])), tmp_path / "out")


def test_the_evaluation_files_hash_not_their_path_is_in_the_version_id(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _jsonl(tmp_path / "a" / "eval.jsonl", [{"text": EVAL_TEXT}])
    moved = _jsonl(tmp_path / "b" / "eval.jsonl", [{"text": EVAL_TEXT}])
    changed = _jsonl(tmp_path / "changed.jsonl", [{"text": EVAL_TEXT + " again"}])
    ids = [manifest_of(run_pipeline(tmp_path / f"run{i}", _paths([path])))["version_id"]
           for i, path in enumerate((first, moved, changed))]
    assert ids[0] == ids[1] != ids[2]



def test_decontaminate_blueprint_reads_the_repository_layout(tmp_path, blueprint_eval):
    repo = tmp_path / "BluePrint"
    (repo / "evaluating" / "generate_data").mkdir(parents=True)
    for name in blueprint_eval:
        (repo / "evaluating" / "generate_data" / Path(name).name).write_bytes(Path(name).read_bytes())
    with pytest.raises(InstructError, match="decontaminate.repo is not set"):
        generate(compose_config("progress=false", "decontaminate=blueprint"), tmp_path / "out")
    run = run_pipeline(tmp_path, "decontaminate=blueprint", f"decontaminate.repo={repo}")
    assert [Path(f["file"]).name for f in manifest_of(run)["filters"]["decontaminate"]["eval_files"]] == [
        "batchinput.jsonl", "solutions.json"]


def test_a_contaminated_line_the_shards_reject_is_left_to_them(tmp_path):
    """The stage reads the texts from the JSON without validating the thread: a match is confirmed by parsing,
    so a line the shards reject is their reject, not a removal, and a valid one is removed as before."""
    import numpy as np

    from instruct.clusterfile import scan
    from instruct.filters.stage import FilterStage, filter_cluster

    index = Decontaminator.load([str(_jsonl(tmp_path / "eval.jsonl", [{"text": EVAL_TEXT, "id": "e1"}]))], 13, "text")
    good = {"thread": [{"user_id": "u", "text": EVAL_TEXT.upper()}], "id": "t1"}
    bad = {"thread": [{"user_id": "u", "text": EVAL_TEXT}, {"user_id": "v", "text": 7}], "id": "t2"}
    named = {"thread": [{"user_id": "", "text": "nothing alike"}], "id": "e1"}
    short = {"thread": [{"user_id": "u", "text": "hi"}], "id": "e1"}
    path = _jsonl(tmp_path / "cluster_0.jsonl", [bad, good, named, short])
    cluster = scan(path)
    result = filter_cluster((FilterStage(index, None), cluster, np.arange(cluster.lines, dtype=np.int64)))
    assert result.dropped.tolist() == [1, 3]
    assert result.reasons == {"decontaminated: ngram": 1, "decontaminated: id": 1}
    assert [r["thread_id"] for r in result.contamination] == ["t1", "e1"]


_TOKENS = st.sampled_from(["the", "City", "council", "VOTED", "café", "ＣＡＦＥ", "late", "on", "!!", "🙂",
                           "x-1", "Incomprehensibilities"])
_TEXTS = st.lists(st.lists(_TOKENS, max_size=9).map(" ".join), max_size=4)  # some texts have no word at all


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(evaluation=st.lists(_TEXTS, min_size=1, max_size=4),
       threads=st.lists(st.tuples(st.sampled_from([None, "e1", "t"]), _TEXTS), max_size=12),
       n=st.integers(1, 4), short_words=st.integers(0, 4), batch_bytes=st.sampled_from([1 << 17, 24]),
       collide=st.booleans())
def test_the_batch_check_finds_what_the_definition_finds(eval_folder, monkeypatch, evaluation, threads, n,
                                                         short_words, batch_bytes, collide):
    """The hashed batch (``match_many``) against every n-gram string in turn (``match_record``): the same match,
    kind, evaluation item and n-gram for every thread, with n-grams across messages, short whole texts, batches
    cut small (a thread longer than a batch read string by string), and every hash made a collision."""
    records = [{"id": f"e{i}", "text": texts} for i, texts in enumerate(evaluation)]
    index = Decontaminator.load([str(_jsonl(eval_folder / "eval.jsonl", records))], n, "text",
                                min(short_words, n))
    monkeypatch.setattr(decontaminate, "_BATCH_BYTES", batch_bytes)
    if collide:  # every n-gram's hash in the set: only the exact index can tell
        monkeypatch.setattr(HashSet, "members", lambda self, hashes: np.arange(len(hashes)))
    found = index.match_many([own_id for own_id, _ in threads],
                             [[normalize.joined(text) for text in texts if text] for _, texts in threads])
    expected = [index.match_record(own_id, [normalize.words(text) for text in texts if text])
                for own_id, texts in threads]
    assert [found.get(number) for number in range(len(threads))] == expected
    assert [index.match_thread(_thread(*filter(None, texts), thread_id=own_id or "", with_id=own_id is not None))
            for own_id, texts in threads] == expected


def test_a_thread_longer_than_a_batch_is_read_string_by_string(tmp_path, monkeypatch):
    word = "incomprehensibilities"
    evaluation = _jsonl(tmp_path / "eval.jsonl", [{"text": EVAL_TEXT}, {"text": f"{word} {word}"}])
    index = Decontaminator.load([str(evaluation)], 13, "text", short_words=2)
    monkeypatch.setattr(decontaminate, "_BATCH_BYTES", 32)
    threads = [[word, word], [f"{word} {word}"], ["x", EVAL_TEXT], ["x"]]
    found = index.match_many([None] * len(threads), [[normalize.joined(t) for t in texts] for texts in threads])
    assert {number: match.by for number, match in found.items()} == {1: "text", 2: "ngram"}  # not 0: two texts
