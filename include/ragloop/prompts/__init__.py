"""Prompt templates: data files in this folder, loaded and validated in one place.

A template is a YAML file:

    name: answer                 # must match the file name
    version: 1                   # bump on every change: runs and grades record name + version
    description: what it is for
    model: gpt-4o-mini           # default model (sources.yaml `llm.model` overrides it)
    invocation: {temperature: 0.1, max_tokens: 600}
    threshold: 0.7               # grading criteria only: the score a verdict must reach to pass
    legend:                      # every variable the messages use, and what it holds
      question: the user's question, verbatim
    messages:
      - {role: system, content: "..."}
      - {role: user, content: "Question: {question}"}

Variables are `{name}`; `{{` and `}}` are literal braces. A variable used but not described in
the legend, or described but never used, is an error when the file loads, not when it renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ragloop.errors import RagloopError

PROMPTS_DIR = Path(__file__).resolve().parent
ROLES = ("system", "user", "assistant")
# Invocation keys passed to the chat API, with their allowed ranges.
INVOCATION_KEYS: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0.0, 2.0),
    "top_p": (float, 0.0, 1.0),
    "max_tokens": (int, 1, 128_000),
    "presence_penalty": (float, -2.0, 2.0),
    "frequency_penalty": (float, -2.0, 2.0),
    "seed": (int, 0, 2**31),
}
TEMPLATE_KEYS = {"name", "version", "description", "model", "invocation", "threshold", "legend", "messages", "response_format"}
VARIABLE = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")


class PromptError(RagloopError, ValueError):
    """A template file is malformed, or rendering lacks a variable; the message names the file and key."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    description: str
    model: str
    messages: tuple[dict[str, str], ...]
    legend: dict[str, str]
    invocation: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None
    response_format: str | None = None  # "json": the reply must be one JSON object
    path: str = ""

    @property
    def label(self) -> str:
        """name@version: how runs and grades record which prompt produced them."""
        return f"{self.name}@{self.version}"

    def render(self, **variables: str) -> list[dict[str, str]]:
        """The chat messages with every variable filled in; extra or missing variables are errors."""
        missing = sorted(set(self.legend) - set(variables))
        extra = sorted(set(variables) - set(self.legend))
        if missing or extra:
            raise PromptError(
                f"prompt {self.label}: "
                + (f"missing variables {missing} " if missing else "")
                + (f"unknown variables {extra} " if extra else "")
                + f"(the legend of {self.path} lists {sorted(self.legend)})"
            )

        def fill(text: str) -> str:
            # One pass, so a variable's value containing "{x}" is never filled in again.
            filled = VARIABLE.sub(lambda m: str(variables[m.group(1)]), text)
            return filled.replace("{{", "{").replace("}}", "}")

        return [{"role": m["role"], "content": fill(m["content"])} for m in self.messages]


# The tags prompts wrap data in. Text placed inside them (a question, an answer, a passage, a
# comment) is escaped so it can never close its own tag early or open another one and pass
# itself off as instructions.
DATA_TAGS = ("question", "answer", "sources", "source", "votes")
_DATA_TAG = re.compile(r"<(?=\s*/?\s*(?:" + "|".join(DATA_TAGS) + r")\b)", re.I)


def escape_data(text: str) -> str:
    """`text` made safe to place between data tags: every `<` that would start one of the
    DATA_TAGS (opening or closing) becomes `&lt;`; nothing else changes."""
    return _DATA_TAG.sub("&lt;", text)


def _fail(path: Path, message: str) -> PromptError:
    return PromptError(f"{path}: {message}")


def parse_template(path: Path) -> PromptTemplate:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PromptError(f"no prompt template {path}") from None
    except yaml.YAMLError as err:
        raise _fail(path, f"not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise _fail(path, "a prompt template must be a mapping")
    unknown = set(data) - TEMPLATE_KEYS
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)} (expected {sorted(TEMPLATE_KEYS)})")
    for key in ("name", "version", "messages", "legend"):
        if data.get(key) in (None, "", [], {}):
            raise _fail(path, f"missing {key!r}")
    if data["name"] != path.stem:
        raise _fail(path, f"name {data['name']!r} must match the file name {path.stem!r}")
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise _fail(path, "version must be a number or a string")

    legend = data["legend"]
    if not isinstance(legend, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in legend.items()
    ):
        raise _fail(path, "legend must map each variable name to a description")
    messages = data["messages"]
    if not isinstance(messages, list):
        raise _fail(path, "messages must be a list of {role, content}")
    used: set[str] = set()
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise _fail(path, f"message {number} must have exactly role and content")
        if message["role"] not in ROLES:
            raise _fail(path, f"message {number}: role must be one of {ROLES}, not {message['role']!r}")
        if not isinstance(message["content"], str) or not message["content"].strip():
            raise _fail(path, f"message {number}: content must be non-empty text")
        used |= set(VARIABLE.findall(message["content"]))
    undescribed = sorted(used - set(legend))
    unused = sorted(set(legend) - used)
    if undescribed:
        raise _fail(path, f"variables {undescribed} are used in messages but not described in the legend")
    if unused:
        raise _fail(path, f"legend describes {unused}, which no message uses")

    invocation = data.get("invocation") or {}
    if not isinstance(invocation, dict):
        raise _fail(path, "invocation must be a mapping")
    for key, value in invocation.items():
        if key not in INVOCATION_KEYS:
            raise _fail(path, f"invocation: unknown key {key!r} (expected {sorted(INVOCATION_KEYS)})")
        kind, low, high = INVOCATION_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise _fail(path, f"invocation.{key} must be {'a whole number' if kind is int else 'a number'}")
        if not low <= value <= high:
            raise _fail(path, f"invocation.{key} must be between {low} and {high}")
    threshold = data.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1
    ):
        raise _fail(path, "threshold must be a number from 0 to 1")
    response_format = data.get("response_format")
    if response_format not in (None, "json", "text"):
        raise _fail(path, "response_format must be json or text")
    model = data.get("model") or ""
    if not isinstance(model, str):
        raise _fail(path, "model must be a string")
    return PromptTemplate(
        name=data["name"],
        version=str(version),
        description=str(data.get("description") or ""),
        model=model,
        messages=tuple({"role": m["role"], "content": m["content"]} for m in messages),
        legend=dict(legend),
        invocation=dict(invocation),
        threshold=float(threshold) if threshold is not None else None,
        response_format=response_format,
        path=str(path),
    )


@cache
def load_prompt(name: str, folder: str | None = None) -> PromptTemplate:
    """The template `name` from this folder (or `folder`), validated."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise PromptError(f"prompt name {name!r} must be letters, digits, '-' or '_'")
    return parse_template(Path(folder or PROMPTS_DIR) / f"{name}.yaml")


def available_prompts(folder: str | None = None) -> list[str]:
    return sorted(p.stem for p in Path(folder or PROMPTS_DIR).glob("*.yaml"))
