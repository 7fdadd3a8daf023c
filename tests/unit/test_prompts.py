"""Prompt templates load and validate in one place; a broken file is named with what is wrong."""

from __future__ import annotations

import pytest

from ragloop.prompts import PromptError, available_prompts, load_prompt, parse_template

GOOD = """\
name: {name}
version: 2
model: gpt-4o-mini
invocation: {{temperature: 0.2, max_tokens: 50}}
legend:
  question: the question
messages:
  - role: user
    content: "Q: {{question}} and a literal {{{{brace}}}}"
"""


def write(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_bundled_prompts_are_valid():
    assert {"answer", "rewrite"} <= set(available_prompts())
    for name in available_prompts():
        template = load_prompt(name)
        assert template.label == f"{name}@{template.version}"
        assert template.legend and template.messages


def test_render_fills_variables_once_and_keeps_literal_braces(tmp_path):
    template = parse_template(write(tmp_path, "t", GOOD.format(name="t")))
    messages = template.render(question="why {question}?")
    assert messages == [{"role": "user", "content": "Q: why {question}? and a literal {brace}"}]
    with pytest.raises(PromptError, match=r"missing variables \['question'\]"):
        template.render()
    with pytest.raises(PromptError, match=r"unknown variables \['extra'\]"):
        template.render(question="q", extra="x")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("question: the question", "other: something"), r"\['question'\] are used in messages but not described"),
        (lambda t: t.replace("  question: the question", "  question: the question\n  unused: never used"), r"legend describes \['unused'\]"),
        (lambda t: t.replace("temperature: 0.2", "temperature: 7"), r"invocation.temperature must be between"),
        (lambda t: t.replace("max_tokens: 50", "max_tokens: 1.5"), r"invocation.max_tokens must be a whole number"),
        (lambda t: t.replace("max_tokens: 50", "max_token: 50"), r"unknown key 'max_token'"),
        (lambda t: t.replace("role: user", "role: robot"), r"message 1: role must be one of"),
        (lambda t: t.replace("version: 2\n", ""), r"missing 'version'"),
        (lambda t: t.replace("name: t", "name: other"), r"must match the file name"),
        (lambda t: t + "threshold: 3\n", r"threshold must be a number from 0 to 1"),
        (lambda t: t + "colour: red\n", r"unknown keys \['colour'\]"),
    ],
    ids=["undescribed", "unused", "temperature", "max-tokens-type", "unknown-invocation", "role", "version", "name",
         "threshold", "unknown-key"],
)
def test_malformed_templates_are_refused_naming_file_and_key(tmp_path, change, message):
    path = write(tmp_path, "t", change(GOOD.format(name="t")))
    with pytest.raises(PromptError, match=message) as err:
        parse_template(path)
    assert str(path) in str(err.value)
