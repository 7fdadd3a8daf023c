"""Reading one docs file: its text decoded, its front matter parsed within bounds, its title."""

from __future__ import annotations

import codecs
import logging
import re
from datetime import date
from pathlib import PurePosixPath
from typing import Any

import yaml
import itertools


log = logging.getLogger(__name__)

BINARY_SNIFF_BYTES = 8192


class Unreadable(Exception):
    """A file exists but cannot be read; the message is the reason given to `report.fail`."""


def decode_text(data: bytes) -> str:
    """UTF-8 (without a BOM), else cp1252 for files saved by old Windows editors."""
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise Unreadable("binary file")
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            offset = bom + utf8_error.start
            raise Unreadable(f"not UTF-8 (and not cp1252): invalid byte 0x{data[offset]:02x} at offset {offset}") from None


# libyaml's parser with the safe constructor: the same values and errors as yaml.safe_load, and it
# was most of the time of a no-change re-run (4.4 of 11.6 s on 4,000 files with front matter).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_FLOW_DEPTH = 200
_FLOW = re.compile(r"[\[\]{}]")


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } in a YAML text (quotes ignored: an over-count only refuses)."""
    depth = deepest = 0
    for bracket in _FLOW.findall(text):
        depth = depth + 1 if bracket in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)^---[ \t]*(?:\n|\Z)", re.DOTALL | re.MULTILINE)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The leading `---` YAML block as a mapping, and the text after it."""
    if not re.match(r"---[ \t]*\n", text):
        return {}, text
    match = FRONT_MATTER.match(text)
    if not match:
        raise Unreadable("malformed front matter: no closing '---' line")
    if _flow_depth(match["yaml"]) > _MAX_FLOW_DEPTH:
        # libyaml would parse it (the pure-Python parser recursed past its limit): refuse it alike.
        raise Unreadable("malformed front matter: nested too deeply")
    try:
        data = yaml.load(match["yaml"], Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        # +2: the mark counts from 0 inside the block, which starts after the opening line.
        where = f" (line {mark.line + 2})" if mark else ""
        raise Unreadable(f"malformed front matter: {err.problem or err.context}{where}") from None
    except (yaml.YAMLError, ValueError) as err:  # ValueError: an impossible date such as 2024-13-45
        raise Unreadable(f"malformed front matter: {str(err).splitlines()[0]}") from None
    except RecursionError:  # thousands of nested brackets: the parser recurses once per level
        raise Unreadable("malformed front matter: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Unreadable(f"malformed front matter: a {type(data).__name__}, not a mapping of fields")
    return data, text[match.end() :]


def json_safe_value(value: Any) -> Any:
    """A front matter value as JSON (dates as ISO strings), or None when it is not simple."""
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list) and all(isinstance(item, (str, int, float, bool, date)) for item in value):
        return [json_safe_value(item) for item in value]
    return None


MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+[ \t]*$")  # one punctuation character, repeated


def markdown_title(text: str) -> str:
    """The first level-1 ATX heading outside fenced code blocks. A page that starts at `##`
    has no title heading: its first `##` names a section ("Diagnose"), and the file name
    ("High memory") says more."""
    fence = ""
    for line in text.split("\n"):
        opener = MD_FENCE.match(line)
        if fence:
            if opener and opener[1][0] == fence[0] and len(opener[1]) >= len(fence) and not line.strip().strip(fence[0]):
                fence = ""
        elif opener:
            fence = opener[1]
        elif (heading := MD_HEADING.match(line)) and line.lstrip().startswith("# "):
            return heading[1].strip()
    return ""


def rst_title(text: str) -> str:
    """The first section title: a text line underlined by a punctuation line at least as long."""
    lines = text.split("\n")
    for line, underline in itertools.pairwise(lines):
        title = line.strip()
        underlined = RST_ADORNMENT.match(underline) and len(underline.rstrip()) >= len(title)
        if title and underlined and not RST_ADORNMENT.match(line):
            return title
    return ""


def title_from_name(rel_path: str) -> str:
    words = re.sub(r"[-_\s]+", " ", PurePosixPath(rel_path).stem).strip() or rel_path
    return words[:1].upper() + words[1:]
