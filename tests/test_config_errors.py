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


@pytest.mark.parametrize("override, first_line_names", [
    ("foo=1", "'foo'"),                                   # unknown key
    ("source.paht=/data", "'source.paht'"),               # unknown key, one level down
    ("seed=abc", "seed=abc"),                             # wrong type
    ("source.max_chains_per_cluster=lots", "source.max_chains_per_cluster"),
    ("tasks=nope", "'tasks/nope'"),                       # unknown task mix
    ("templates=nope", "'templates/nope'"),               # unknown template set (group option)
])
def test_hydra_level_mistakes_name_the_key_in_their_first_line(tmp_path, override, first_line_names):
    result = run_cli(tmp_path, override)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert first_line_names in result.stderr.splitlines()[0], result.stderr
    assert not any(tmp_path.rglob("*_*")), "no run folder"


@pytest.mark.parametrize("override, line", [
    ("+foo=1", "error: unknown config key foo (a typo? `python run.py --cfg job` lists every key)"),
    ("+source.foo=1", "error: unknown config key source.foo (a typo? `python run.py --cfg job` lists every key)"),
    ("source=blueprint", "error: source.path is not set (give it on the command line: source.path=…)"),
    ("mix.dolly_fraction=1.5", "error: mix.dolly_fraction=1.5 is out of range: it must be in [0, 1)"),
])
def test_our_mistakes_print_exactly_one_error_line(tmp_path, override, line):
    result = run_cli(tmp_path, override)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]
    assert not any((tmp_path / "default").glob("*")), "no run folder"


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
