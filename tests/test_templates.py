"""Template rendering: the %-style fast form fills a template exactly as str.format_map does."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from instruct.templates import BUNDLED, Template, placeholders

ALL_BUNDLED = [Template(f"{path.parent.name}/{entry['id']}", entry["text"]) for path in sorted(BUNDLED.glob("*/*.yaml"))
               for entries in yaml.safe_load(path.read_text(encoding="utf-8")).values() for entry in entries]

values_text = st.text(alphabet="ab %{}()sd\n", max_size=12)


@pytest.mark.parametrize("template", ALL_BUNDLED, ids=lambda t: t.id)
def test_bundled_templates_render_as_format_map(template):
    values = {name: f"<{name} 100% {{x}} %(y)s>" for name in placeholders(template.text)}
    assert template.render(values) == template.text.format_map(values)


@given(before=values_text.filter(lambda t: "{" not in t and "}" not in t), after=values_text, value=values_text)
def test_any_plain_template_renders_as_format_map(before, after, value):
    text = before + "{name}" + after.replace("{", "{{").replace("}", "}}")
    assert Template("t", text).render({"name": value, "other": 1}) == text.format_map({"name": value, "other": 1})


@pytest.mark.parametrize("text,value", [("{n!r} %", "x"), ("{n:>6}%%", 7), ("{n[0]} x", [7]), ("{n.real}", 7),
                                        ("100% {n} {{literal}} %s %(n)s", 7.5)])
def test_fields_beyond_plain_names_still_render(text, value):
    assert Template("t", text).render({"n": value}) == text.format_map({"n": value})
