"""Prompt templates: plain YAML data files with ``{name}`` placeholders, selected by set name.

A set is a folder with one ``<task>.yaml`` per task: ``{variant: [{id, text}, …]}``. OmegaConf never reads
these files, so a template can contain anything but an unfilled placeholder. Every template is linted
against what its task provides when the run starts, so a bad template fails before any work, naming the file
and the template id.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from instruct.errors import InstructError

BUNDLED = Path(__file__).parent / "prompts"


# What a prompt built from several threads must not call itself: one thread, conversation or discussion.
ONE_THREAD = ("this discussion", "the discussion", "this conversation", "the conversation", "this thread",
              "the thread", "this exchange", "the exchange", "following discussion", "following conversation",
              "following thread")


@dataclass(frozen=True, slots=True)
class Slots:
    """What a task provides to one variant's templates, and what its answers promise.

    Args:
        required: every template must use each of these (a prompt without its haystack is useless).
        optional: may be used.
        must_say: a template must contain one of these phrases (case-insensitive): the promise the task's
            answer keeps (an extractive answer is a "verbatim" quote).
        must_say_all: a template must contain every one of these: promises that hold together (next_action's
            answer shape beside "new post").
        must_not_say: a template must contain none of these: promises the answer cannot keep ("in a few
            sentences" for a copied message, "this thread" for a feed of many threads).
    """

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    must_say: tuple[str, ...] = ()
    must_not_say: tuple[str, ...] = ()
    must_say_all: tuple[str, ...] = ()

    @classmethod
    def of(cls, *required: str, optional: tuple[str, ...] = (), must_say: tuple[str, ...] = (),
           must_not_say: tuple[str, ...] = (), must_say_all: tuple[str, ...] = ()) -> "Slots":
        return cls(frozenset(required), frozenset(optional), tuple(must_say), tuple(must_not_say),
                   tuple(must_say_all))


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    text: str
    # The same template in %-style when all its fields are plain {name}s: rendered with a mapping, faster than
    # str.format_map, which parses the template again on every call.
    _printf: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_printf", _printf_form(self.text))

    def render(self, values: Mapping[str, object]) -> str:
        """The text with its placeholders filled from ``values`` (as ``str.format_map`` fills them)."""
        if self._printf is not None:
            return self._printf % values
        return self.text.format_map(values)


def _printf_form(text: str) -> str | None:
    """``text`` as a %-format string, or None if a field is more than ``{name}`` (a conversion, a format spec,
    an index) or the text is not a valid template (linting reports it)."""
    parts = []
    try:
        for literal, name, spec, conversion in string.Formatter().parse(text):
            parts.append(literal.replace("%", "%%"))
            if name is not None:
                if spec or conversion or not name.isidentifier():
                    return None
                parts.append(f"%({name})s")
    except ValueError:
        return None
    return "".join(parts)


def placeholders(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


class TemplateSet:
    """All templates of one set, loaded and linted once per process.

    Args:
        name: the set name (``default``, ``concise``), a folder under the bundled prompts.
        folder: a folder of your own instead of the bundled one.
    """

    def __init__(self, name: str, folder: str | Path | None = None):
        self.name = name
        self.folder = Path(folder) if folder else BUNDLED / name
        if not self.folder.is_dir():
            known = sorted(p.name for p in BUNDLED.iterdir() if p.is_dir())
            raise InstructError(f"unknown template set {name!r}: no folder {self.folder} (bundled sets: {known})")
        self._variants: dict[str, dict[str, list[Template]]] = {}

    def variants(self, task_file: str, slots: dict[str, Slots]) -> dict[str, list[Template]]:
        """The linted templates of one task file, by variant."""
        if task_file not in self._variants:
            self._variants[task_file] = self._load(task_file, slots)
        return self._variants[task_file]

    def _load(self, task_file: str, slots: dict[str, Slots]) -> dict[str, list[Template]]:
        path = self.folder / f"{task_file}.yaml"
        if not path.is_file():
            raise InstructError(f"template set {self.name!r} has no {path.name} (looked in {self.folder})")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InstructError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise InstructError(f"{path}: expected a mapping of variant -> list of templates")
        unknown = sorted(set(data) - set(slots))
        missing = sorted(set(slots) - set(data))
        if unknown or missing:
            raise InstructError(f"{path}: variants {sorted(data)} do not match the task's {sorted(slots)}")
        seen: set[str] = set()
        result = {}
        for variant, entries in data.items():
            if not isinstance(entries, list) or not entries:
                raise InstructError(f"{path}: variant {variant!r} needs a non-empty list of templates")
            result[variant] = [_lint(path, entry, slots[variant], seen) for entry in entries]
        return result


def _lint(path: Path, entry: object, slots: Slots, seen: set[str]) -> Template:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not isinstance(entry.get("text"), str):
        raise InstructError(f"{path}: every template needs a string 'id' and 'text', got {entry!r:.80}")
    template_id, text = entry["id"], entry["text"]
    where = f"{path}: template {template_id!r}"
    if template_id in seen:
        raise InstructError(f"{where}: duplicate id")
    seen.add(template_id)
    if "${" in text:
        raise InstructError(f"{where}: '${{' is not a placeholder here; write {{name}}")
    try:
        used = placeholders(text)
    except ValueError as exc:
        raise InstructError(f"{where}: bad placeholder syntax ({exc}); write a literal brace as {{{{ or }}}}") from None
    unknown = sorted(set(used) - slots.required - slots.optional)
    if unknown:
        raise InstructError(f"{where}: unknown placeholder(s) {unknown}; this task provides "
                            f"{sorted(slots.required | slots.optional)}")
    missing = sorted(slots.required - set(used))
    if missing:
        raise InstructError(f"{where}: missing placeholder(s) {missing}")
    # The template's own words (placeholders blanked), so a phrase inside a filled-in post never counts.
    wording = " ".join(Template(template_id, text).render({name: " " for name in used}).lower().split())
    broken = [phrase for phrase in slots.must_not_say if _says(wording, phrase)]
    if broken:
        raise InstructError(f"{where}: says {broken[0]!r}, a promise this task's answer cannot keep")
    if slots.must_say and not any(_says(wording, phrase) for phrase in slots.must_say):
        raise InstructError(f"{where}: must say one of {list(slots.must_say)} (the promise its answer keeps)")
    unsaid = [phrase for phrase in slots.must_say_all if not _says(wording, phrase)]
    if unsaid:
        raise InstructError(f"{where}: must say {unsaid[0]!r} (the promise its answer keeps)")
    template = Template(template_id, text)
    if not template.render({name: "" for name in used}).strip():
        raise InstructError(f"{where}: renders to an empty prompt")
    return template


def _says(wording: str, phrase: str) -> bool:
    """Whether the phrase occurs in the (lowercased) wording as whole words."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", wording) is not None
