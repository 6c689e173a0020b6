"""End to end: real BluePrint threads in both shapes plus a Dolly file → a complete versioned dataset that
trainers' loaders read."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from collections import Counter

import orjson
import pytest
from conftest import ROOT, manifest_of, read_jsonl, run_pipeline

PAPER_TASKS = {"needle", "keyword_post", "completion"}


@pytest.fixture(params=["released", "raw"])
def real_run(request, tmp_path, shared_sample, dolly_file):
    return run_pipeline(tmp_path, "tasks=paper", f"source.path={shared_sample / request.param}",
                        f"dolly.path={dolly_file}")


def test_every_paper_task_produces_rows_from_real_threads(real_run):
    manifest = manifest_of(real_run)
    assert manifest["complete"] is True
    produced = {name: task["produced"] for name, task in manifest["counts"]["per_task"].items()}
    assert set(produced) == PAPER_TASKS and all(n > 0 for n in produced.values()), produced
    rows = read_jsonl(real_run / "train" / "cluster_0.jsonl") + read_jsonl(real_run / "train" / "cluster_1.jsonl")
    assert Counter(r["task"] for r in rows) == Counter({**produced, "dolly": manifest["counts"]["dolly"]})


def test_counts_add_up_for_every_input_file(real_run):
    manifest = manifest_of(real_run)
    for entry in manifest["inputs"]["clusters"]:
        assert entry["lines"] == 200
        assert entry["read"] == entry["used"] + entry["sampled_out"] + entry["rejected"] + entry["filtered"] == 200
        # cluster_0 repeats a post once and a scam post ("i was diagnosed with kidney cancer …") four times
        assert entry["filtered"] == {"cluster_0": 5, "cluster_1": 0}[entry["cluster"]]
        assert len(entry["sha256"]) == 64
    rows_out = sum(o["rows"] for o in manifest["outputs"].values())
    assert rows_out == manifest["counts"]["rows"]


def test_dolly_rows_follow_the_mix_formula(real_run):
    manifest = manifest_of(real_run)
    for path, out in manifest["outputs"].items():
        assert out["dolly"] == round(out["generated"] * 0.2 / 0.8)
        rows = read_jsonl(real_run / path)
        assert sum(r["task"] == "dolly" for r in rows) == out["dolly"]
        dolly_prompts = [r["messages"][0]["content"] for r in rows if r["task"] == "dolly"]
        assert len(dolly_prompts) == len(set(dolly_prompts)), "Dolly rows are sampled without replacement"
    assert abs(manifest["mix"]["realized_dolly_fraction"] - 0.2) < 0.01


def test_responses_come_from_the_data(real_run, shared_sample):
    texts = set()
    for path in (shared_sample / "released").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            texts.update(m["text"] for m in orjson.loads(line)["thread"] if m.get("text"))
    for row in read_jsonl(real_run / "train" / "cluster_0.jsonl"):
        response = row["messages"][1]["content"]
        assert response.strip()
        assert not re.search(r"\[LLM|PLACEHOLDER|\{[a-z_]+\}", response)
        if row["task"] == "keyword_post":
            assert response in texts
        if row["task"] == "completion":
            assert any(t.strip().endswith(response) for t in texts)


def test_manifest_records_what_was_asked_and_from_which_inputs(real_run, dolly_file):
    manifest = manifest_of(real_run)
    assert manifest["choices"]["tasks"] == ["needle", "keyword_post", "completion"]
    assert manifest["config"]["mix"]["dolly_fraction"] == 0.2
    assert manifest["inputs"]["dolly"]["file"] == str(dolly_file)
    assert manifest["software"]["hydra-core"].startswith("1.3")
    assert manifest["timing"]["seconds"] > 0
    assert (real_run / ".hydra" / "config.yaml").is_file()
    card = (real_run / "README.md").read_text()
    assert card.startswith("---\n") and "CC BY-SA 3.0" in card and "| needle |" in card


def test_sample_caps_threads_with_a_seeded_uniform_sample(tmp_path, shared_sample):
    run = run_pipeline(tmp_path, f"source.path={shared_sample / 'released'}", "mix=none",
                       "source.max_chains_per_cluster=50")
    again = run_pipeline(tmp_path, f"source.path={shared_sample / 'released'}", "mix=none",
                         "source.max_chains_per_cluster=50")
    other_seed = run_pipeline(tmp_path, f"source.path={shared_sample / 'released'}", "mix=none",
                              "source.max_chains_per_cluster=50", "seed=7")
    lines = lambda run: sorted({r["meta"]["line"] for r in read_jsonl(run / "train" / "cluster_0.jsonl")})
    for entry in manifest_of(run)["inputs"]["clusters"]:
        assert entry["used"] + entry["rejected"] == 50 and entry["sampled_out"] == 150
    assert lines(run) == lines(again)
    assert lines(run) != lines(other_seed)
    assert max(lines(run)) > 60, "a sample, not the first N lines"


def test_same_config_same_version_id_and_separate_folders(tmp_path):
    first = run_pipeline(tmp_path, "mix=none")
    second = run_pipeline(tmp_path, "mix=none")
    third = run_pipeline(tmp_path, "mix=none", "seed=1")
    assert first != second
    assert first.name.split("_")[-1] == second.name.split("_")[-1] != third.name.split("_")[-1]
    assert (first / "train" / "cluster_0.jsonl").read_bytes() == (second / "train" / "cluster_0.jsonl").read_bytes()


@pytest.mark.parametrize("fmt", ["messages", "alpaca", "sharegpt"])
def test_hf_datasets_loads_the_output(tmp_path, fmt):
    datasets = pytest.importorskip("datasets")
    run = run_pipeline(tmp_path, f"output={fmt}", "tasks=paper")
    loaded = datasets.load_dataset("json", data_files={"train": str(run / "train" / "*.jsonl")},
                                   cache_dir=str(tmp_path / "hf"))
    assert loaded["train"].num_rows == manifest_of(run)["counts"]["rows"]
    first = loaded["train"][0]
    if fmt == "messages":
        assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    elif fmt == "alpaca":
        assert {"instruction", "input", "output"} <= set(first)
    else:
        assert [t["from"] for t in first["conversations"]] == ["human", "gpt"]


def test_blueprint_format_is_what_blueprints_finetuning_reads(tmp_path):
    run = run_pipeline(tmp_path, "output=blueprint", "tasks=paper")
    rows = read_jsonl(run / "train" / "cluster_0.jsonl")
    metas = read_jsonl(run / "meta" / "train" / "cluster_0.jsonl")
    assert len(rows) == len(metas) > 0
    for row, meta in zip(rows, metas):
        assert isinstance(row, list)
        roles = [turn["role"] for turn in row]
        assert roles[0] == "system" and roles[-1] == "assistant" and set(roles) <= {"system", "context", "assistant"}
        assert set(orjson.loads(row[-1]["content"])) == {"text"}
        assert meta["task"] in PAPER_TASKS | {"dolly"}


def test_readme_run_command_works_on_bundled_sample(tmp_path):
    result = subprocess.run([sys.executable, "run.py", f"output_root={tmp_path}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    run_dir = result.stdout.strip().splitlines()[-1].removeprefix("dataset: ")
    assert manifest_of(__import__("pathlib").Path(run_dir))["counts"]["generated"] > 0


def test_two_job_sweep_gives_two_datasets_and_a_summary(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run([sys.executable, "run.py", "-m", "mix.dolly_fraction=0.1,0.3", "source.max_chains_per_cluster=40",
                             f"hydra.sweep.dir={sweep}", "progress=false"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    runs = sorted(p.parent for p in sweep.glob("*/manifest.json"))
    assert len(runs) == 2
    fractions = sorted(manifest_of(r)["mix"]["requested_dolly_fraction"] for r in runs)
    assert fractions == [0.1, 0.3]
    summary = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert summary[0].startswith("job,overrides") and len(summary) == 3
    assert "mix.dolly_fraction=0.1" in summary[1] and "mix.dolly_fraction=0.3" in summary[2]


def test_joblib_launcher_runs_a_sweep_preset_in_parallel_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run([sys.executable, "run.py", "preset=dolly_sweep", "hydra/launcher=joblib",
                             "source.max_chains_per_cluster=30", f"hydra.sweep.dir={sweep}", "progress=false"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert len(summary) == 4
    assert sorted(manifest_of(p.parent)["mix"]["requested_dolly_fraction"] for p in sweep.glob("*/manifest.json")) == [0.1, 0.2, 0.3]


def test_the_run_folder_loads_by_name_through_its_dataset_card(tmp_path):
    datasets = pytest.importorskip("datasets")
    run = run_pipeline(tmp_path, "split.validation_fraction=0.2")
    loaded = datasets.load_dataset(str(run), cache_dir=str(tmp_path / "hf"))
    rows = manifest_of(run)["counts"]["rows"]
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].num_rows + loaded["validation"].num_rows == rows
    assert set(loaded["validation"]["meta"][0]) >= {"task", "thread_id", "split"}


def test_version_id_follows_input_contents_not_their_location(tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(ROOT / "data" / "sample", moved)
    here = run_pipeline(tmp_path, "mix=none")
    there = run_pipeline(tmp_path, "mix=none", f"source.path={moved}")
    (moved / "cluster_1.jsonl").write_bytes((moved / "cluster_1.jsonl").read_bytes() + b"\n")
    changed = run_pipeline(tmp_path, "mix=none", f"source.path={moved}")  # one blank line more: one reject
    version = lambda run: run.name.split("_")[-1]
    assert version(here) == version(there) != version(changed)


def test_the_manifest_says_when_source_path_was_overridden(tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(ROOT / "data" / "sample", moved)
    result = subprocess.run([sys.executable, "run.py", f"output_root={tmp_path}", f"source.path={moved}",
                             "progress=false", "card.chart=false"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1].removeprefix("dataset: "))
    assert manifest_of(run_dir)["choices"]["source"] == "sample (source.path overridden)"
