"""Every format loads where the card and the README say it does: HF ``datasets`` by folder name (the card's
``configs:`` and declared features) and by glob, LLaMA-Factory through ``dataset_info.json``, Axolotl through
its ``datasets:`` snippet, ``blueprint`` as BluePrint's finetuning.py reads it.

LLaMA-Factory 0.9.5 and Axolotl 0.19 pin torch, transformers, trl and datasets (Axolotl also antlr4, against
Hydra's pin), so each runs in an environment of its own (``.ci/trainer-envs``): their tests write runs here
and start a script of ``in_trainer_env/`` with that environment's interpreter, named by
INSTRUCT_LLAMAFACTORY_PYTHON and INSTRUCT_AXOLOTL_PYTHON (CI sets both; unset, those tests skip). The always-run
tests load the folder the way their loaders do (read in llamafactory/data/loader.py, axolotl/utils/data/shared.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
import yaml
from conftest import manifest_of, read_jsonl, run_pipeline

from instruct.card import prompt_and_response

datasets = pytest.importorskip("datasets")

LOADABLE = ["messages", "alpaca", "sharegpt"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """One run per format, tasks=all with a validation split, on the bundled sample."""
    base = tmp_path_factory.mktemp("formats")
    return {fmt: run_pipeline(base / fmt, f"output={fmt}", "tasks=all", "split.validation_fraction=0.2",
                              "card.chart=false") for fmt in [*LOADABLE, "blueprint"]}


def card_block(run, heading: str, language: str) -> str:
    card = (run / "README.md").read_text()
    return re.search(rf"{re.escape(heading)}.*?```{language}\n(.*?)```", card, re.S).group(1)


def split_rows(run) -> dict[str, int]:
    return manifest_of(run)["counts"]["rows_by_split"]


@pytest.mark.parametrize("fmt", LOADABLE)
def test_the_folder_loads_by_name_and_by_glob_with_every_row(runs, tmp_path, fmt):
    run = runs[fmt]
    by_name = datasets.load_dataset(str(run), cache_dir=str(tmp_path / "a"))
    by_glob = datasets.load_dataset("json", data_files={s: str(run / s / "*.jsonl") for s in ("train", "validation")},
                                    cache_dir=str(tmp_path / "b"))
    for loaded in (by_name, by_glob):
        assert {split: loaded[split].num_rows for split in loaded} == split_rows(run)
    assert by_name["train"][0] == by_glob["train"][0]


def test_a_split_whose_first_file_has_no_needle_rows_still_loads_by_name(runs, tmp_path):
    """Arrow infers `needle_depths` of such a file as a list of nulls, and the next file's numbers cannot be cast
    to it: the card declares the features, so the folder loads by name whatever the files' order."""
    run = tmp_path / "run"
    shutil.copytree(runs["messages"], run)
    first = run / "validation" / "cluster_0.jsonl"
    kept = [line for line in first.read_bytes().splitlines(keepends=True) if b'"task":"needle"' not in line]
    first.write_bytes(b"".join(kept))
    later = read_jsonl(run / "validation" / "cluster_1.jsonl")
    assert any(row["meta"]["needle_depths"] for row in later), "the later file must have needle depths"
    with pytest.raises(Exception):  # the hazard is real: inferred types fail
        datasets.load_dataset("json", data_files=[str(first), str(run / "validation" / "cluster_1.jsonl")],
                              split="train", cache_dir=str(tmp_path / "inferred"))
    loaded = datasets.load_dataset(str(run), split="validation", cache_dir=str(tmp_path / "declared"))
    assert loaded.num_rows == len(kept) + len(later)
    features = datasets.load_dataset_builder(str(run)).info.features  # the README's by-hand remedy
    by_hand = datasets.load_dataset("json", data_files=str(run / "validation" / "*.jsonl"), features=features,
                                    split="train", cache_dir=str(tmp_path / "by_hand"))
    assert by_hand.num_rows == loaded.num_rows


def test_the_card_features_are_what_datasets_infers_from_a_full_file(runs, tmp_path):
    for fmt in LOADABLE:
        front = yaml.safe_load((runs[fmt] / "README.md").read_text().split("---")[1])
        declared = datasets.Features._from_yaml_list(front["dataset_info"]["features"])
        inferred = datasets.load_dataset("json", data_files=str(runs[fmt] / "train" / "*.jsonl"), split="train",
                                         cache_dir=str(tmp_path / fmt)).features
        assert declared == inferred


def test_blueprint_loads_as_the_card_and_readme_say_and_has_no_loader_claim(runs):
    run = runs["blueprint"]
    front = yaml.safe_load((run / "README.md").read_text().split("---")[1])
    assert "configs" not in front and not (run / "dataset_info.json").exists()
    code = card_block(run, "## Training", "python")
    scope: dict = {}
    exec(code, scope)  # the card's own snippet, as printed
    ds = scope["ds"]
    assert ds.num_rows == manifest_of(run)["outputs"]["train/cluster_0.jsonl"]["rows"]
    assert [turn["role"] for turn in ds[0]["chains"]][-1] == "assistant"
    assert not list((run / "train").glob("*meta*")), "no sidecar inside a data folder"
    assert len(read_jsonl(run / "meta" / "train" / "cluster_0.jsonl")) == ds.num_rows


# LLaMA-Factory ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", LOADABLE)
def test_dataset_info_names_both_splits_and_loads_as_llama_factory_reads_it(runs, tmp_path, fmt):
    """LLaMA-Factory: `script_url` → load_dataset(dataset_dir/script_url, split=…); then its converter reads
    the named columns, and for sharegpt formatting the role tags (loader.py, converter.py of 0.9.5)."""
    run = runs[fmt]
    info = json.loads((run / "dataset_info.json").read_text())
    assert set(info) == {"instruct_train", "instruct_validation"}
    for name, entry in info.items():
        loaded = datasets.load_dataset(str(run / entry["script_url"]), split=entry["split"],
                                       cache_dir=str(tmp_path / name))
        assert loaded.num_rows == split_rows(run)[entry["split"]]
        assert set(entry["columns"].values()) <= set(loaded.column_names)
        if entry["formatting"] == "sharegpt":
            tags = entry["tags"]
            turns = loaded[0][entry["columns"]["messages"]]
            assert [t[tags["role_tag"]] for t in turns] == [tags["user_tag"], tags["assistant_tag"]]
            assert all(isinstance(t[tags["content_tag"]], str) for t in turns)
        else:
            assert entry["formatting"] == "alpaca" and loaded[0]["output"]
    assert f"dataset_dir: {run}" in card_block(run, "**LLaMA-Factory**", "yaml")


@pytest.mark.parametrize("fmt", LOADABLE)
def test_llama_factory_itself_loads_both_splits(runs, tmp_path, fmt):
    """LLaMA-Factory's own loader and converter (its environment): every row of both splits, and the first row's
    answer as its assistant turn."""
    run = runs[fmt]
    read = in_trainer_env("llamafactory", "llamafactory_loads.py", tmp_path, str(run))
    assert {split: got["rows"] for split, got in read.items()} == split_rows(run)
    first = json.loads((run / "train" / "cluster_0.jsonl").read_bytes().splitlines()[0])
    _, answer = prompt_and_response(first, fmt)
    assert read["train"]["response"] == [{"role": "assistant", "content": answer}]
    assert read["train"]["prompt"][-1]["role"] == "user" and read["train"]["prompt"][-1]["content"]


# Axolotl ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", LOADABLE)
def test_the_axolotl_snippet_loads_each_split_as_axolotl_does(runs, tmp_path, fmt):
    """Axolotl's local-folder path: not a saved dataset → load_dataset(path, split=…) (utils/data/shared.py);
    chat_template then reads field_messages and message_property_mappings."""
    run = runs[fmt]
    config = yaml.safe_load(card_block(run, "**Axolotl**", "yaml"))
    entries = {"train": config["datasets"][0], "validation": config["test_datasets"][0]}
    for split, entry in entries.items():
        loaded = datasets.load_dataset(entry["path"], split=entry["split"], cache_dir=str(tmp_path / split))
        assert loaded.num_rows == split_rows(run)[split]
        if entry["type"] == "chat_template":
            mapping = entry["message_property_mappings"]
            turns = loaded[0][entry["field_messages"]]
            roles = [t[mapping["role"]] for t in turns]
            names = {alias: role for role, aliases in entry.get("roles", {}).items() for alias in aliases}
            assert [names.get(r, r) for r in roles] == ["user", "assistant"]
            assert entry["roles_to_train"] == ["assistant"]
        else:
            assert entry["type"] == "alpaca" and {"instruction", "input", "output"} <= set(loaded.column_names)


@pytest.mark.parametrize("fmt", LOADABLE)
def test_axolotl_itself_accepts_and_loads_the_snippet(runs, tmp_path, fmt):
    """Axolotl's own config schema, loader and chat_template strategy (its environment): the card's entries are
    valid, load every row, and its strategy trains on the answer and on nothing else."""
    snippet = tmp_path / "axolotl.yaml"
    snippet.write_text(card_block(runs[fmt], "**Axolotl**", "yaml"))
    read = in_trainer_env("axolotl", "axolotl_loads.py", tmp_path, str(snippet))
    assert {got["split"]: got["rows"] for got in read} == split_rows(runs[fmt])
    for got in read:
        if got["type"] == "chat_template":
            assert got["trained"].removesuffix("<|im_end|>") == got["answer"]
        else:
            assert got["type"] == "alpaca" and {"instruction", "input", "output"} <= set(got["columns"])


def in_trainer_env(trainer: str, script: str, tmp_path: Path, *args: str):
    """Run ``in_trainer_env/<script>`` with the trainer's own interpreter and return the JSON it writes."""
    variable = f"INSTRUCT_{trainer.upper()}_PYTHON"
    python = os.environ.get(variable)
    if not python:
        pytest.skip(f"{variable} is not set: eval \"$(.ci/trainer-envs)\" builds {trainer}'s environment and sets it")
    result = tmp_path / f"{trainer}.json"
    # Its own HF cache in tmp_path, and offline: a trainer's loader must read the folder, never the hub.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([python, str(Path(__file__).parent / "in_trainer_env" / script), *args, str(result)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{trainer} failed:\n{done.stderr[-4000:]}"
    return json.loads(result.read_text())


# TRL ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", LOADABLE)
def test_the_trl_snippet_gives_a_dataset_trl_recognises(runs, fmt):
    """The card's TRL lines up to the trainer: `messages` (and sharegpt, mapped) are conversational with
    user/assistant roles; alpaca becomes prompt/completion (trl.data_utils decides the same way)."""
    from trl.data_utils import is_conversational

    code = card_block(runs[fmt], "**TRL**", "python")
    compile(code, "card", "exec")  # the whole snippet is valid Python, the trainer line included
    head = code.split("trainer = SFTTrainer")[0].replace("from trl import SFTConfig, SFTTrainer\n", "")
    scope: dict = {}
    exec(head, scope)
    train = scope["ds"]["train"]
    assert train.num_rows == split_rows(runs[fmt])["train"]
    if fmt == "alpaca":
        assert set(train.column_names) == {"prompt", "completion"} and not is_conversational(train[0])
    else:
        assert train.column_names == ["messages"] and is_conversational(train[0])
        assert [m["role"] for m in train[0]["messages"]] == ["user", "assistant"]
    assert "validation" in scope["ds"] and 'eval_dataset=ds["validation"]' in code
