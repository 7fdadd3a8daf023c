"""Include/exclude globs compiled to regular expressions, with `**` spanning folders."""

from __future__ import annotations

import logging
import re


log = logging.getLogger(__name__)


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob over posix relative paths: `*`, `?` and `[...]` stay within one path segment, and a
    `**` segment matches any number of directories, including none ("**/*.md" matches "a.md")."""
    segments = pattern.strip("/").split("/")
    regex = ""
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(segment) + ("" if last else "/")
    return re.compile(regex)


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        i += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := _class_end(segment, i)) != -1:
            body, i = segment[i:end], end + 1
            negate = body.startswith("!")
            out.append(("[^/" if negate else "[") + _class_body(body[1:] if negate else body) + "]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_end(segment: str, start: int) -> int:
    """Index of the "]" closing a class opened just before `start`; a "]" first in it is literal."""
    start += segment[start : start + 1] == "!"
    start += segment[start : start + 1] == "]"
    return segment.find("]", start)


def _class_body(body: str) -> str:
    # Escape every member so that regex-only syntax ("^", "[", "&&") stays literal; keep a-z ranges.
    out, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            out.append(f"{re.escape(body[i])}-{re.escape(body[i + 2])}")
            i += 3
        else:
            out.append(re.escape(body[i]))
            i += 1
    return "".join(out)
