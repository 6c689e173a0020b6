"""Every preset and every group option composes, every task config instantiates, and bad values fail early."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import CONF, ROOT, compose_config
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from instruct.errors import InstructError
from instruct.pipeline import build_tasks
from instruct.schema import check
from instruct.tasks.base import Task
from instruct.templates import TemplateSet


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("preset", options("preset"))
def test_every_preset_composes_and_passes_checks(preset):
    cfg = compose_config(f"preset={preset}")
    check(cfg)


@pytest.mark.parametrize("group", ["source", "dolly", "tasks", "templates", "mix", "output"])
def test_every_group_option_composes(group):
    for option in options(group):
        cfg = compose_config(f"{group}={option}", "source.path=/data")
        assert cfg[group] is not None


@pytest.mark.parametrize("mix", options("tasks"))
@pytest.mark.parametrize("template_set", options("templates"))
def test_every_task_mix_instantiates_with_every_template_set(mix, template_set):
    cfg = compose_config(f"tasks={mix}", f"templates={template_set}")
    tasks = build_tasks(cfg.tasks, TemplateSet(cfg.templates.set, cfg.templates.dir))
    assert tasks and all(isinstance(task, Task) for task in tasks)
    assert [task.name for task in tasks] == [name for name, node in cfg.tasks.items() if node.weight > 0]


@pytest.mark.parametrize("task", options("task"))
def test_every_task_config_instantiates(task):
    cfg = compose_config(f"+task@tasks.extra={task}")
    assert isinstance(instantiate(cfg.tasks.extra), Task)


def test_paper_preset_is_the_original_setup():
    cfg = compose_config("preset=paper")
    assert list(cfg.tasks) == ["needle", "keyword_post", "completion"]
    assert {node.weight for node in cfg.tasks.values()} == {1.0}
    assert cfg.mix.dolly_fraction == 0.2
    assert cfg.source.max_chains_per_cluster == 10000
    assert cfg.seed == 42
    assert cfg.output.format == "blueprint"
    assert cfg.run_name == "paper"


@pytest.mark.parametrize("override, key", [
    ("mix.dolly_fraction=1.0", "mix.dolly_fraction"),
    ("mix.dolly_fraction=-0.1", "mix.dolly_fraction"),
    ("split.validation_fraction=1.5", "split.validation_fraction"),
    ("workers=0", "workers"),
    ("source.max_chains_per_cluster=0", "source.max_chains_per_cluster"),
])
def test_out_of_range_values_fail_naming_the_key(override, key):
    with pytest.raises(InstructError, match=key.replace(".", r"\.")):
        check(compose_config(override))


def test_all_zero_weights_fail():
    cfg = compose_config("tasks.needle.weight=0", "tasks.keyword_post.weight=0", "tasks.completion.weight=0")
    with pytest.raises(InstructError, match="weight"):
        check(cfg)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("override, words", [
    ("sorce.path=/x", ["sorce"]),
    ("mix.dolly_fraction=abc", ["mix.dolly_fraction"]),
    ("tasks=nope", ["tasks", "nope"]),
])
def test_cli_rejects_bad_overrides_before_any_work(tmp_path, override, words):
    result = run_cli(override, f"output_root={tmp_path}")
    assert result.returncode != 0
    for word in words:
        assert word in result.stderr
    assert not any(tmp_path.rglob("manifest.json"))


def test_cli_missing_input_names_path_and_fix(tmp_path):
    result = run_cli(f"source.path={tmp_path}/missing", f"output_root={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: input folder not found: {tmp_path}/missing (set source.path=/path/to/cluster/files)"]


def test_cli_missing_dolly_names_the_mix_none_fix(tmp_path):
    result = run_cli(f"dolly.path={tmp_path}/dolly.jsonl", f"output_root={tmp_path}")
    assert result.returncode == 2
    assert "mix=none" in result.stderr and f"{tmp_path}/dolly.jsonl" in result.stderr


def test_help_lists_groups_options_and_examples():
    result = run_cli("--help")
    assert result.returncode == 0
    for group in ("tasks:", "templates:", "mix:", "output:", "preset:", "source:"):
        assert group in result.stdout
    assert result.stdout.count("python run.py") >= 3


def test_only_a_preset_or_a_hydra_override_sets_the_run_mode():
    """run.py skips Hydra's first compose (read only for hydra.mode) unless an override of `hydra…`, or of
    `preset` naming a preset whose file sets a mode, could set it: so no other config file may set it (a
    preset's defaults list included), and the defaults leave it unset."""
    setters = [path.relative_to(CONF) for path in CONF.rglob("*.yaml")
               if "mode:" in path.read_text() and path.parts[len(CONF.parts)] not in ("preset", "hydra")]
    assert setters == []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[], return_hydra_config=True)
    assert cfg.hydra.mode is None



@pytest.mark.parametrize("overrides, argv, composes", [
    (["workers=2", "tasks=all"], [], False),
    (["preset=dolly_sweep"], [], True),
    (["+preset=dolly_sweep"], [], True),
    (["preset=paper", "workers=2"], [], False),
    (["+preset=smoke"], [], False),
    (["preset=smoke,dolly_sweep"], [], True),
    (["preset=not_ours"], [], True),
    (["hydra.mode=MULTIRUN"], [], True),
    (["workers=2"], ["--config-dir=/elsewhere"], True),
])
def test_run_py_composes_for_the_mode_only_when_the_command_line_can_set_it(monkeypatch, overrides, argv, composes):
    """hydra.main's first compose (the preset=dolly_sweep test in test_end_to_end proves a sweep preset still
    sweeps) is kept for exactly the command lines that can set hydra.mode."""
    import run
    from hydra._internal.hydra import Hydra

    asked = []
    monkeypatch.setattr(Hydra, "get_mode", lambda self, config_name, overrides: asked.append(overrides) or "composed")
    monkeypatch.setattr(sys, "argv", ["run.py", *argv, *overrides])
    run.compose_once()
    mode = Hydra.get_mode(None, config_name="config", overrides=overrides)
    assert (mode == "composed") is composes and bool(asked) is composes
    assert composes or mode is None
