"""Every parameter of every task is checked from the config before any work: a wrong type, a value out of range
or an unknown key fails in one line that names the key and says what it expects."""

from __future__ import annotations

import inspect
import typing

import pytest
from conftest import CONF, compose_config

from instruct.errors import InstructError
from instruct.pipeline import generate
from instruct.schema import check, check_task
from hydra.utils import get_class
from omegaconf import OmegaConf

TASKS = sorted(path.stem for path in (CONF / "task").glob("*.yaml"))


def parameters() -> list[tuple[str, str, object]]:
    """(task, parameter, annotation) for every __init__ parameter of every bundled task."""
    found = []
    for task in TASKS:
        cls = get_class(OmegaConf.load(CONF / "task" / f"{task}.yaml")._target_)
        hints = typing.get_type_hints(cls.__init__)
        for name in inspect.signature(cls.__init__).parameters:
            if name != "self":
                found.append((task, name, hints[name]))
    return found


def bad_values(hint) -> list[tuple[object, str]]:
    """Values of the wrong type for an annotation, with the words the error must use."""
    text = str(hint)
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint) and len(options) == 1 and options[0] in (int, float, bool):
        return bad_values(options[0])  # Optional[...]: the same wrong types, the message adds "or null"
    if hint is bool:
        return [("abc", "must be true or false"), (1, "must be true or false")]
    if hint is int:
        return [("abc", "must be an integer"), (2.5, "must be an integer"), (True, "must be an integer")]
    if hint is float:
        return [("abc", "must be a number"), (True, "must be a number")]
    if "list" in text:
        return [("abc", "must be a list of strings"), ([1, 2], "must be a list of strings")]
    if "Mapping" in text or "dict" in text:
        return [("abc", "must be a mapping")]
    raise AssertionError(f"no bad values for {hint}: add them here")


ALL = compose_config("progress=false", "tasks=all")


def fails(tmp_path, task: str, *overrides: str) -> str:
    """Compose with the overrides and generate: the one-line error, with nothing created."""
    cfg = compose_config("progress=false", "tasks=all", *overrides)
    with pytest.raises(InstructError) as failure:
        generate(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing created"
    message = str(failure.value)
    assert "\n" not in message
    return message


def fails_check(task: str, name: str, value: object) -> str:
    """The same check on the composed tasks=all config with one value set (composing ~90 times would be slow)."""
    cfg = ALL.copy()
    OmegaConf.update(cfg, f"tasks.{task}.{name}", value, merge=False)
    with pytest.raises(InstructError) as failure:
        check(cfg)
    message = str(failure.value)
    assert "\n" not in message
    return message


CASES = [(task, name, value, words) for task, name, hint in parameters() for value, words in bad_values(hint)]


@pytest.mark.parametrize("task, name, value, words", CASES, ids=[f"{t}.{n}={v!r}" for t, n, v, _ in CASES])
def test_a_wrong_type_names_the_task_parameter(task, name, value, words):
    message = fails_check(task, name, value)
    assert message.startswith(f"tasks.{task}.{name}={value!r} "), message
    assert words in message


@pytest.mark.parametrize("override, line", [
    ("tasks.needle.lookback=abc", "tasks.needle.lookback='abc' must be an integer >= 0"),
    ("tasks.summarization.max_chars=1.5", "tasks.summarization.max_chars=1.5 must be an integer >= 1"),
    ("tasks.keyword_post.max_zipf=9", "tasks.keyword_post.max_zipf=9 must be a number in [0, 8]"),
    ("tasks.voting_intention.labels=abc", "tasks.voting_intention.labels='abc' must be a mapping or null"),
])
def test_through_generate_nothing_is_created(tmp_path, override, line):
    assert fails(tmp_path, "", override) == line


NUMERIC = [(task, name) for task, name, hint in parameters() if hint in (int, float)]


@pytest.mark.parametrize("task, name", NUMERIC, ids=[f"{t}.{n}" for t, n in NUMERIC])
def test_a_number_below_its_range_names_the_parameter_and_the_range(task, name):
    cls = get_class(OmegaConf.load(CONF / "task" / f"{task}.yaml")._target_)
    low, high = cls.bounds.get(name, (0, None))
    message = fails_check(task, name, low - 1)
    assert message.startswith(f"tasks.{task}.{name}={low - 1} must be ")
    assert (f"in [{low}, {high}]" if high is not None else f">= {low}") in message
    if high is not None:
        above = fails_check(task, name, high + 1)
        assert above.startswith(f"tasks.{task}.{name}={high + 1} must be ")


@pytest.mark.parametrize("task", TASKS)
def test_an_unknown_parameter_added_with_plus_lists_what_the_task_takes(task):
    cfg = ALL.copy()
    OmegaConf.update(cfg, f"tasks.{task}.wieght", 2, force_add=True)
    with pytest.raises(InstructError) as failure:
        check(cfg)
    message = str(failure.value)
    assert message.startswith(f"unknown config key tasks.{task}.wieght (tasks.{task} takes: weight, ")


@pytest.mark.parametrize("task", TASKS)
def test_every_bundled_task_config_passes_the_check(task):
    check_task(f"tasks.{task}", ALL.tasks[task])


def test_a_target_that_is_not_a_class_is_named(tmp_path):
    message = fails_check("needle", "_target_", "instruct.tasks.nowhere.Nothing")
    assert message.startswith("tasks.needle._target_='instruct.tasks.nowhere.Nothing' is not an importable class")


def test_null_is_accepted_where_the_annotation_allows_it_only(tmp_path):
    cfg = ALL.copy()
    OmegaConf.update(cfg, "tasks.next_action.actions", None)
    check_task("tasks.next_action", cfg.tasks.next_action)
    assert "must be an integer >= 2" in fails_check("needle", "max_messages", None)


@pytest.mark.parametrize("override, message", [
    ("decontaminate.ngram=0", "decontaminate.ngram=0 must be >= 1"),
    ("decontaminate.short_words=14", "decontaminate.short_words=14 must be in"),
    ("dedup.threshold=0", "dedup.threshold=0.0 must be in"),
    ("dedup.num_perm=2", "dedup.num_perm=2 must be in"),
    ("dedup.shingle=0", "dedup.shingle=0 must be >= 1"),
    ("budget.max_tokens=0", "budget.max_tokens=0 must be >= 1"),
    ("budget.chars_per_token=0", "budget.chars_per_token=0.0 must be > 0"),
    ("tasks.needle.max_tokens=0", "tasks.needle.max_tokens=0 must be an integer >= 1"),
])
def test_a_bad_filter_value_fails_naming_the_key(tmp_path, override, message):
    with pytest.raises(InstructError, match=message):
        generate(compose_config("progress=false", override), tmp_path / "out")
