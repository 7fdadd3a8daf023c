"""The text the secret and personal-data checks read: invisible characters removed, lookalike
letters folded, and each encoded segment decoded, by rule rather than by list.

- Invisible: every character Unicode marks Default_Ignorable_Code_Point (all format characters,
  category Cf, plus variation selectors, U+034F, U+115F/U+1160, U+3164, U+FFA0, U+180B-U+180F,
  tag characters U+E0000-U+E0FFF...). A token split by one of them reads as whole to a person and
  to a copy-paste, so the checks read the text without them.
- NFKC: full-width and styled letters become plain ones.
- Confusables: a letter Unicode's confusables table (the `confusable-homoglyphs` package's copy
  of confusables.txt) says looks like one ASCII character becomes that character, so a `ghp_`
  token with a Cyrillic `р` is read as the token it passes for.
- Decoded variants: percent-decoding, HTML entities and base64 segments are decoded and read too
  (a key wrapped in base64 or a webhook URL-encoded is still that key).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote

import regex

# Unicode's own rule for "renders as nothing": the regex module reads the property from the
# Unicode Character Database it ships, so new invisible characters come with an upgrade.
INVISIBLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")
# Base64 (standard or URL-safe) runs long enough to hold a credential; shorter ones are words.
BASE64_SEGMENT = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,}={0,2}")
PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
HTML_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def strip_invisible(text: str) -> str:
    """NFKC with every default-ignorable character removed: what a person sees and copies."""
    return INVISIBLE.sub("", unicodedata.normalize("NFKC", INVISIBLE.sub("", text)))


@lru_cache(maxsize=1)
def _ascii_lookalikes() -> dict[int, str]:
    """Non-ASCII character -> the ASCII character it is confusable with, from the maintained
    confusables table. Only one-character ASCII homoglyphs count (letters, digits, symbols)."""
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[int, str] = {}
    for char, glyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            target = glyph["c"]
            if len(target) == 1 and target.isascii() and target.isprintable() and not target.isspace():
                table[ord(char)] = target
                break
    return table


def fold_confusables(text: str) -> str:
    if text.isascii():
        return text
    return text.translate(_ascii_lookalikes())


def normalise(text: str) -> str:
    """The text the secret checks read: visible characters only, lookalikes folded to ASCII."""
    return fold_confusables(strip_invisible(text))


def _printable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    visible = sum(c.isprintable() or c in "\n\r\t" for c in decoded)
    return decoded if decoded and visible / len(decoded) >= 0.95 else None


def decoded_variants(text: str, depth: int = 2) -> list[str]:
    """The text decoded each way it may hide a credential (percent, HTML entities, base64
    segments), recursively to `depth`, each variant normalised; the text itself not included."""
    found: list[str] = []
    frontier = [text]
    for _ in range(depth):
        next_frontier = []
        for current in frontier:
            candidates = []
            if PERCENT_ESCAPE.search(current):
                candidates.append(unquote(current))
            if HTML_ENTITY.search(current):
                candidates.append(html.unescape(current))
            for match in BASE64_SEGMENT.finditer(current):
                segment = match.group()
                padded = segment + "=" * (-len(segment) % 4)
                try:
                    raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
                except (binascii.Error, ValueError):
                    continue
                decoded = _printable(raw)
                if decoded and len(decoded) >= 8:
                    candidates.append(decoded)
            for candidate in candidates:
                variant = normalise(candidate)
                if variant != current and variant not in found and variant != text:
                    found.append(variant)
                    next_frontier.append(variant)
        frontier = next_frontier
    return found
