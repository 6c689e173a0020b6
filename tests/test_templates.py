"""Template rendering (the %-style fast form fills a template exactly as str.format_map does) and linting (a
template whose promise its task cannot keep fails at start)."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from instruct.errors import InstructError
from instruct.tasks.completion import CompletionTask
from instruct.tasks.keyword_post import KeywordPostTask
from instruct.tasks.needle import NeedleTask
from instruct.tasks.next_action import NextActionTask
from instruct.tasks.paraphrase import ParaphraseTask
from instruct.tasks.summarization import SummarizationTask
from instruct.tasks.topic_post import TopicPostTask
from instruct.templates import BUNDLED, Template, TemplateSet, placeholders

ALL_BUNDLED = [Template(f"{path.parent.name}/{entry['id']}", entry["text"]) for path in sorted(BUNDLED.glob("*/*.yaml"))
               for entries in yaml.safe_load(path.read_text(encoding="utf-8")).values() for entry in entries]

values_text = st.text(alphabet="ab %{}()sd\n", max_size=12)


@pytest.mark.parametrize("template", ALL_BUNDLED, ids=lambda t: t.id)
def test_bundled_templates_render_as_format_map(template):
    values = {name: f"<{name} 100% {{x}} %(y)s>" for name in placeholders(template.text)}
    assert template.render(values) == template.text.format_map(values)


# Slots whose value can span lines: a post, a transcript, a feed, a haystack, a user's posts.
BLOCK_SLOTS = ("beginning", "conversation", "feed", "haystack", "context", "history", "post")


@pytest.mark.parametrize("template", ALL_BUNDLED, ids=lambda t: t.id)
def test_a_block_of_lines_with_text_after_it_starts_on_a_line_of_its_own(template):
    """A post can span lines. Run into a sentence on both sides ("starts like this: {beginning} ... Write the
    rest", until 0.5.1) its first line reads as the end of the instruction and its last as the start of the
    next; a block that ends the prompt, or starts on a line of its own, has an edge the reader can see."""
    for match in re.finditer(r"\{(" + "|".join(BLOCK_SLOTS) + r")\}", template.text):
        before, after = template.text[: match.start()], template.text[match.end():]
        assert not after or not before or before.endswith("\n"), template.id


@given(before=values_text.filter(lambda t: "{" not in t and "}" not in t), after=values_text, value=values_text)
def test_any_plain_template_renders_as_format_map(before, after, value):
    text = before + "{name}" + after.replace("{", "{{").replace("}", "}}")
    assert Template("t", text).render({"name": value, "other": 1}) == text.format_map({"name": value, "other": 1})


@pytest.mark.parametrize("text,value", [("{n!r} %", "x"), ("{n:>6}%%", 7), ("{n[0]} x", [7]), ("{n.real}", 7),
                                        ("100% {n} {{literal}} %s %(n)s", 7.5)])
def test_fields_beyond_plain_names_still_render(text, value):
    assert Template("t", text).render({"n": value}) == text.format_map({"n": value})


# A template whose promise its task cannot keep is a lint error when the run starts ---------------------------

def _set_with(tmp_path, task_file: str, variant: str, text: str) -> TemplateSet:
    """The bundled default set with one template of ``task_file``/``variant`` replaced by ``text``."""
    folder = tmp_path / "mine"
    shutil.copytree(BUNDLED / "default", folder)
    data = yaml.safe_load((folder / f"{task_file}.yaml").read_text(encoding="utf-8"))
    data[variant][0]["text"] = text
    (folder / f"{task_file}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return TemplateSet("mine", folder)


@pytest.mark.parametrize("task,task_file,variant,text,complaint", [
    (SummarizationTask, "summarization", "thread", "Summarize {conversation} in a few sentences, quoting {count} verbatim.",
     "in a few sentences"),
    (SummarizationTask, "summarization", "thread", "Pick the {count} key messages of {conversation}.", "must say one of"),
    (SummarizationTask, "summarization", "feed", "Quote the {count} key messages of this thread verbatim: {feed}",
     "this thread"),
    (SummarizationTask, "summarization", "feed_llm", "Summarize the following discussion: {feed}", "discussion"),
    (NeedleTask, "needle", "nth_message", "{haystack}\nWhat is the {ordinal} message of this conversation?",
     "this conversation"),
    (NextActionTask, "next_action", "new_post", "Given the thread above, what does {user} do? {action_list}",
     "the thread"),
    (NextActionTask, "next_action", "new_post",
     'A new post by {user}? {action_list}. Answer {{"actions": [...], "text": ...}}', '"actions": ['),
    (NextActionTask, "next_action", "new_post", 'A new post by {user}? {action_list}. Answer in JSON.',
     'must say \'"actions": {\''),
    (NextActionTask, "next_action", "new_post",
     'A new post by {user}? {action_list}. Answer {{"actions": {{...}}, "text": null}}', "'null'"),
    (CompletionTask, "completion", "default", "Bring this post to a natural end: {beginning}", "natural end"),
])
def test_a_template_promising_what_its_task_cannot_keep_fails_at_start(tmp_path, task, task_file, variant, text,
                                                                      complaint):
    templates = _set_with(tmp_path, task_file, variant, text)
    with pytest.raises(InstructError, match=re.escape(complaint)) as caught:
        task().bind(task_file, templates)
    assert f"{task_file}.yaml" in str(caught.value) and f"{task_file}.{variant}" in str(caught.value)


def test_the_promise_is_read_in_the_template_not_in_what_fills_it(tmp_path):
    # "thread" inside a post shown in the feed is not the template calling the feed one thread.
    templates = _set_with(tmp_path, "summarization", "feed", "Quote the {count} key messages of this feed verbatim: {feed}")
    SummarizationTask().bind("summarization", templates)


def test_every_bundled_set_keeps_its_promises():
    for name in ("default", "concise"):
        for task in (SummarizationTask(), NeedleTask(), NextActionTask(), CompletionTask(), KeywordPostTask(),
                     TopicPostTask(), ParaphraseTask()):
            task.bind(task.template_file, TemplateSet(name))
