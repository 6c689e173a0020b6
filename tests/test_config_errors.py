"""Every config mistake fails before any work, in one line that names the key or the path to fix.

Mistakes Hydra catches (while composing) are run through ``python run.py``; the ones our checks catch are run
through compose + generate, and must leave no output folder behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import ROOT, compose_config

from instruct.errors import InstructError
from instruct.pipeline import generate
from instruct.templates import BUNDLED


def run_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "progress=false", f"output_root={tmp_path}",
                           *overrides], cwd=ROOT, capture_output=True, text=True, timeout=120)


UNKNOWN = "error: unknown config key {} (a typo? `python run.py --cfg job` lists every key)"


@pytest.mark.parametrize("override, line", [
    ("foo=1", UNKNOWN.format("foo")),                                        # unknown key, no +
    ("+foo=1", UNKNOWN.format("foo")),                                       # the same with +
    ("seeed=1", UNKNOWN.format("seeed")),
    ("source.paht=/data", UNKNOWN.format("source.paht")),                    # one level down
    ("+source.foo=1", UNKNOWN.format("source.foo")),
    ("mix.doly_fraction=0.3", UNKNOWN.format("mix.doly_fraction")),
    ("tasks.needle.lookbak=3", UNKNOWN.format("tasks.needle.lookbak")),      # a task parameter, no +
    ("+tasks.needle.weihgt=2", "error: unknown config key tasks.needle.weihgt (tasks.needle takes: weight, variants, "
                               "max_messages, max_chars, min_messages, lookback, needles, snippet_words, max_tokens)"),
    ("seed=abc", "error: seed=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ("source.max_chains_per_cluster=lots", "error: source.max_chains_per_cluster=lots: Value 'lots' of type 'str' "
                                           "could not be converted to Integer"),
    ("tasks=nope", "error: In 'config': Could not find 'tasks/nope' (options: all, paper, persona)"),
    ("templates=nope", "error: In 'config': Could not find 'templates/nope' (options: concise, default)"),
    ("tasks.needle.lookback=abc", "error: tasks.needle.lookback='abc' must be an integer >= 0"),
    ("tasks.needle.max_messages=abc", "error: tasks.needle.max_messages='abc' must be an integer >= 2"),
    ("source=blueprint", "error: source.path is not set (give it on the command line: source.path=…)"),
    ("mix.dolly_fraction=1.5", "error: mix.dolly_fraction=1.5 is out of range: it must be in [0, 1)"),
])
def test_every_mistake_prints_exactly_one_error_line_and_leaves_no_folder(tmp_path, override, line):
    result = run_cli(tmp_path, override)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]
    assert not any(tmp_path.iterdir()), "no run folder, and no empty output folder either"


def fails_before_any_work(tmp_path: Path, *overrides: str) -> str:
    """Compose with overrides, call generate, and return the one-line error; nothing may be created."""
    cfg = compose_config("progress=false", *overrides)
    with pytest.raises(InstructError) as failure:
        generate(cfg, tmp_path / "out")
    message = str(failure.value)
    assert "\n" not in message
    assert not (tmp_path / "out").exists()
    return message


@pytest.mark.parametrize("override, key", [
    ("mix.dolly_fraction=1.0", "mix.dolly_fraction=1.0"),
    ("split.validation_fraction=-0.1", "split.validation_fraction=-0.1"),
    ("source.max_reject_fraction=1.5", "source.max_reject_fraction=1.5"),
    ("source.max_chains_per_cluster=0", "source.max_chains_per_cluster"),
    ("workers=0", "workers=0"),
    ("tasks.needle.weight=abc", "tasks.needle.weight='abc'"),
    ("tasks.needle.weight=-1", "tasks.needle.weight=-1"),
    ("output.format=csv", "output.format='csv'"),
    ("templates.set=nope", "unknown template set 'nope'"),
])
def test_bad_values_name_the_key(tmp_path, override, key):
    assert key in fails_before_any_work(tmp_path, override)


def test_all_weights_zero_fails(tmp_path):
    names = list(compose_config().tasks)
    message = fails_before_any_work(tmp_path, *[f"tasks.{name}.weight=0" for name in names])
    assert message == "every task weight is zero: set at least one tasks.<name>.weight > 0"


def test_a_template_with_a_placeholder_its_task_lacks_names_file_and_template(tmp_path):
    folder = tmp_path / "prompts"
    shutil.copytree(BUNDLED / "default", folder)
    path = folder / "completion.yaml"
    text = path.read_text()
    path.write_text(text.replace("writing only the rest of it: {beginning}", "writing only the rest of it: "
                                 "{beginning} in the voice of {author}", 1))
    assert path.read_text() != text
    message = fails_before_any_work(tmp_path, f"templates.dir={folder}")
    assert message.startswith(f"{path}: template 'completion.default.02': unknown placeholder(s) ['author']")


def test_an_input_folder_without_matching_files_names_folder_and_pattern(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "cluster_0.csv").write_text("not a match")
    message = fails_before_any_work(tmp_path, f"source.path={empty}")
    assert message.startswith(f"no files matching 'cluster_*.jsonl' in {empty}")
    message = fails_before_any_work(tmp_path, f"source.path={tmp_path / 'nowhere'}")
    assert message.startswith(f"input folder not found: {tmp_path / 'nowhere'}")


def test_a_missing_dolly_file_names_the_path(tmp_path):
    message = fails_before_any_work(tmp_path, f"dolly.path={tmp_path / 'dolly.jsonl'}")
    assert message.startswith(f"Dolly file not found: {tmp_path / 'dolly.jsonl'}") and "mix=none" in message


@pytest.mark.parametrize("content", [
    b"instruction,context,response,category\nName a fruit,,Apple,open_qa\n",                      # a CSV export
    orjson.dumps([{"instruction": "Name a fruit", "response": "Apple"}]),                         # one JSON array
    b'{"prompt": "Name a fruit", "completion": "Apple"}\n',                                       # another format
])
def test_a_dolly_file_in_the_wrong_format_names_the_path(tmp_path, content):
    path = tmp_path / "dolly.jsonl"
    path.write_bytes(content)
    message = fails_before_any_work(tmp_path, f"dolly.path={path}")
    assert message.startswith(f"{path}: no usable Dolly rows (expected JSON lines with 'instruction' and 'response'")


def test_a_source_path_that_is_a_file_says_so_and_names_the_folder(tmp_path):
    path = tmp_path / "cluster_0.jsonl"
    path.write_bytes(b"[]\n")
    message = fails_before_any_work(tmp_path, f"source.path={path}")
    assert message == (f"source.path={path} is a file, not a folder: set source.path={tmp_path} "
                       f"(and source.pattern='cluster_0.jsonl' for this file alone)")
