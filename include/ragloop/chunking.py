"""Split a Document into Chunks that fit the embedding model, one section at a time.

A document is cut into sections at its headings (markdown ATX headings outside fenced code, rst
section titles; "text" has none). Each section's body is cut into blocks (paragraphs, lists,
code), and blocks are packed greedily into chunks of at most the model's token limit, counted with
the model's own tokenizer. Every chunk starts with its heading path ("Title > Section > Sub") so
it can be understood alone.

Sections never share a chunk, and nothing (overlap included) crosses a section boundary: an edit
in one section then changes only that section's chunks, and every other chunk keeps its text and
hash, so re-indexing reuses their vectors instead of embedding the whole document again.

The heading scanners are written here rather than taken from LangChain's markdown header
splitters: those drop the text of an unclosed fence and end a ``~~~`` fence at a ``` line inside
it (so a "# comment" in a quoted code sample becomes a heading), and they know nothing of rst.
One fence scanner serves both headings and blocks, so the two never disagree. LangChain's
RecursiveCharacterTextSplitter cuts the blocks too large for one chunk.

About 500 lines, over the ~450 the project aims for, on purpose: the section scanner, the block
scanner and the packer share one notion of a fence and of a token count, and splitting them
across modules would put the invariant above (sections never share a chunk) in no single place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Iterable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ragloop.documents import Chunk, Document, normalize_content

# Bump whenever a change here splits the same text differently: the signature carries it, so
# every document is re-split and re-indexed with the new algorithm.
CHUNKER_VERSION = "1"
FORMATS = ("markdown", "rst", "text")
# Word pieces and BPE tokens of real text average 3 to 5 characters; a section longer than this
# many characters per token of the limit is not worth counting whole.
_MAX_CHARS_PER_TOKEN = 6
# Below this a heading path and a few words no longer fit in one chunk.
MIN_LIMIT = 8

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+$")  # one punctuation character, repeated
_RST_CODE_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:code-block|code|sourcecode|parsed-literal)::")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")
# Where an overlap may start: after a sentence end or at a line start.
_OVERLAP_START = re.compile(r"(?<=[.!?])\s+|\n+")
# Paragraphs, then lines, sentences, clause breaks, words; "" only cuts a single word longer
# than a whole chunk (a hash, a minified line), which must still fit the model.
_PROSE_SEPARATORS = ["\n\n", "\n", r"(?<=[.!?])\s+", r"(?<=[,;:])\s+", r"\s+", ""]


@dataclass(frozen=True)
class ChunkingSettings:
    max_tokens: int = 256
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.overlap_tokens < 0:
            raise ValueError(f"Chunking needs max_tokens ≥ 1 and overlap_tokens ≥ 0, not {self}")

    @property
    def signature(self) -> str:
        """Stored with indexed documents: a change of settings or of the algorithm re-splits them."""
        return f"v{CHUNKER_VERSION}:max={self.max_tokens}:overlap={self.overlap_tokens}"


@dataclass
class _Section:
    headings: list[str]
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Code:
    """A code block as lines, so an oversized one can be cut between lines and each part re-opened
    (`reopen`) and closed (`reclose`) to stay valid markup."""

    head: tuple[str, ...]
    body: tuple[str, ...]
    tail: tuple[str, ...]
    reopen: tuple[str, ...]
    reclose: tuple[str, ...]


@dataclass(frozen=True)
class _Block:
    text: str
    code: _Code | None = None


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    is_code: bool = False
    is_overlap: bool = False


class _TokenCounter:
    """Counts each distinct text once per split() call, many texts per tokenizer call."""

    def __init__(self, count: Callable[[str], int], count_batch: Callable[[list[str]], list[int]] | None):
        self._count, self._count_batch = count, count_batch
        self._known: dict[str, int] = {}

    def count(self, text: str) -> int:
        if text not in self._known:
            self._known[text] = self._count(text)
        return self._known[text]

    def many(self, texts: Iterable[str]) -> list[int]:
        texts = list(texts)
        unknown = list(dict.fromkeys(t for t in texts if t not in self._known))
        if unknown:
            counts = self._count_batch(unknown) if self._count_batch else [self._count(t) for t in unknown]
            self._known.update(zip(unknown, counts, strict=False))
        return [self._known[t] for t in texts]


# --- sections ------------------------------------------------------------------------------------


def _opens_fence(line: str) -> str | None:
    """The fence characters if `line` opens a fenced code block (at any indent: lists nest them)."""
    match = _FENCE.match(line)
    if not match or (match[2][0] == "`" and "`" in match[3]):  # ```x``` on a line is inline code
        return None
    return match[2]


def _closes_fence(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)


def _open_section(sections: list[_Section], stack: list[tuple[int, str]], level: int, heading: str) -> None:
    """Start the section of a heading at `level` (smaller is outer): it closes every open section
    at the same or a deeper level."""
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, heading))
    sections.append(_Section([text for _, text in stack]))


def _markdown_sections(lines: list[str]) -> list[_Section]:
    sections = [_Section([])]
    stack: list[tuple[int, str]] = []
    fence: str | None = None
    for line in lines:
        if fence:
            if _closes_fence(line, fence):
                fence = None
        elif fence := _opens_fence(line):
            pass  # the opening fence line stays in the section's text, like the code after it
        elif heading := _ATX_HEADING.match(line):
            _open_section(sections, stack, len(heading[1]), heading[2] or "")
            continue
        sections[-1].lines.append(line)
    return sections


def _rst_title_at(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, adornment style, lines used) if a section title starts at line i."""
    if i > 0 and lines[i - 1].strip():
        return None  # a title starts a text block
    first = _RST_ADORNMENT.match(lines[i])
    if first and i + 2 < len(lines):  # overline, title, underline
        title, under = lines[i + 1].strip(), _RST_ADORNMENT.match(lines[i + 2])
        if title and under and under[1] == first[1] and len(title) <= min(len(lines[i]), len(lines[i + 2])):
            return title, (first[1], True), 3
    title = lines[i]
    if first or not title.strip() or title[0].isspace() or i + 1 >= len(lines):
        return None
    under = _RST_ADORNMENT.match(lines[i + 1])
    if under and len(lines[i + 1]) >= len(title):
        return title.strip(), (under[1], False), 2
    return None


def _rst_sections(lines: list[str]) -> list[_Section]:
    sections = [_Section([])]
    styles: list[tuple[str, bool]] = []  # levels in order of first appearance, as docutils does
    stack: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        found = _rst_title_at(lines, i)
        if found is None:
            sections[-1].lines.append(lines[i])
            i += 1
            continue
        title, style, used = found
        if style not in styles:
            styles.append(style)
        _open_section(sections, stack, styles.index(style), title)
        i += used
    return sections


# --- blocks --------------------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_run(lines: list[str], start: int, indent: int) -> int:
    """End of the lines from `start` that are blank or indented more than `indent`, trailing
    blank lines left out."""
    end = j = start
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
        j += 1
        end = j if lines[j - 1].strip() else end
    return end


def _blocks(lines: list[str], fmt: str) -> list[_Block]:
    """Paragraphs, lists (with their blank lines), markdown fences and rst literal blocks."""
    blocks: list[_Block] = []
    current: list[str] = []

    def flush() -> None:
        text = "\n".join(current).strip("\n")
        if text.strip():
            blocks.append(_Block(text))
        current.clear()

    def add_code(head: list[str], body: list[str], tail: list[str], reopen: list[str], reclose: list[str]) -> None:
        flush()
        code = _Code(tuple(head), tuple(body), tuple(tail), tuple(reopen), tuple(reclose))
        text = "\n".join(code.head + code.body + code.tail).strip("\n")
        if text.strip():
            blocks.append(_Block(text, code))

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _opens_fence(line) if fmt == "markdown" else None
        directive = _RST_CODE_DIRECTIVE.match(line) if fmt == "rst" else None
        if fence:
            end = next((j for j in range(i + 1, len(lines)) if _closes_fence(lines[j], fence)), len(lines))
            closer = line[: len(line) - len(line.lstrip())] + fence
            add_code([line], lines[i + 1 : end], lines[end : end + 1], [line], [closer])
            i = end + 1
        elif directive:
            end = _indented_run(lines, i + 1, _indent(line))
            add_code([line], lines[i + 1 : end], [], [line, ""], [])
            i = end
        elif not line.strip():
            # A blank line between list items (or inside one) does not end the list.
            in_list = bool(current) and _LIST_ITEM.match(current[0]) is not None
            following = next((lines[j] for j in range(i + 1, len(lines)) if lines[j].strip()), None) if in_list else None
            if following is not None and (_LIST_ITEM.match(following) or following[0].isspace()):
                current.append(line)
            else:
                flush()
            i += 1
        else:
            current.append(line)
            i += 1
            # rst: a paragraph ending in "::" introduces an indented literal block.
            if (
                fmt == "rst"
                and line.endswith("::")
                and not current[0].lstrip().startswith("..")
                and i < len(lines)
                and not lines[i].strip()
            ):
                end = _indented_run(lines, i, _indent(current[0]))
                if end > i:
                    add_code([], lines[i:end], [], ["::", ""], [])
                    i = end
    flush()
    return blocks


def _parse(document: Document) -> list[tuple[list[str], list[_Block]]]:
    """(headings, blocks) of every section that has a body, in document order."""
    fmt = document.metadata.get("format") or "markdown"
    if fmt not in FORMATS:
        raise ValueError(f"Document {document.doc_id!r}: format must be one of {FORMATS}, not {fmt!r}")
    lines = normalize_content(document.content).split("\n")
    sections = {"markdown": _markdown_sections, "rst": _rst_sections, "text": lambda ls: [_Section([], ls)]}[fmt](lines)
    return [(section.headings, blocks) for section in sections if (blocks := _blocks(section.lines, fmt))]


def _same_heading(heading: str, title: str) -> bool:
    """Equal but for case and inline markup: "# Python SDK (`pkg`)" repeats title "Python SDK (pkg)"."""

    def plain(text: str) -> str:
        return " ".join(re.sub(r"[`*_]", "", text).split()).casefold()

    return plain(heading) == plain(title)


# --- the chunker ---------------------------------------------------------------------------------


class Chunker:
    """Splits documents for one tokenizer and one ChunkingSettings. Keeps no state between calls,
    so one instance can serve many threads."""

    def __init__(
        self,
        settings: ChunkingSettings,
        count_tokens: Callable[[str], int],
        max_input_tokens: int | None = None,
        count_tokens_batch: Callable[[list[str]], list[int]] | None = None,
    ):
        self.settings = settings
        self.limit = min(settings.max_tokens, max_input_tokens) if max_input_tokens else settings.max_tokens
        if self.limit < MIN_LIMIT:
            raise ValueError(f"A chunk limit of {self.limit} tokens cannot hold a heading and some text; use ≥ {MIN_LIMIT}")
        self._count_tokens = count_tokens
        self._count_tokens_batch = count_tokens_batch
        self._separator_tokens = count_tokens("\n\n")

    def split(self, document: Document) -> list[Chunk]:
        parsed = _parse(document)
        counter = _TokenCounter(self._count_tokens, self._count_tokens_batch)
        full_paths = [self._full_path(document.title, headings) for headings, _ in parsed]
        # Most sections fit in one chunk. Counting such a section whole is exact and reads its text
        # once; only sections that may not fit (by a generous bound on characters per token) or
        # that do not are counted block by block, packed, and checked. Each step is one
        # tokenizer call for the whole document.
        whole = {
            s: self._chunk_text(" > ".join(full_paths[s]), "\n\n".join(b.text for b in blocks))
            for s, (_, blocks) in enumerate(parsed)
        }
        whole = {s: text for s, text in whole.items() if len(text) <= self.limit * _MAX_CHARS_PER_TOKEN}
        counter.many([" > ".join(p) for p in full_paths] + list(whole.values()))
        paths = [self._fit_path(path, counter) for path in full_paths]
        headers = [" > ".join(path) for path in paths]
        bodies: list[list[str]] = [[] for _ in parsed]
        pending = []
        for s, (_, blocks) in enumerate(parsed):
            if s in whole and paths[s] == full_paths[s] and counter.count(whole[s]) <= self.limit:
                bodies[s] = ["\n\n".join(b.text for b in blocks)]
            else:
                pending.append(s)
        counter.many(block.text for s in pending for block in parsed[s][1])
        budgets = [self.limit - counter.count(h) - self._separator_tokens if h else self.limit for h in headers]
        # Blocks are counted alone; joined text may count differently (BPE merges across
        # boundaries), so every chunk is counted whole and a section that overshoots is packed
        # again with a smaller budget. With word-piece tokenizers this never happens.
        while pending:
            for s in pending:
                if budgets[s] < 1:
                    raise ValueError(f"Document {document.doc_id!r}: cannot fit section {paths[s]} in {self.limit} tokens")
                bodies[s] = self._pack(parsed[s][1], budgets[s], counter)
            texts = [self._chunk_text(headers[s], body) for s in pending for body in bodies[s]]
            counts = iter(counter.many(texts))
            overshoots = {s: max((next(counts) - self.limit for _ in bodies[s]), default=0) for s in pending}
            pending = [s for s, over in overshoots.items() if over > 0]
            for s in pending:
                budgets[s] -= overshoots[s]

        chunks: list[Chunk] = []
        for path, header, section_bodies in zip(paths, headers, bodies, strict=False):
            for body in section_bodies:
                chunks.append(Chunk(document.doc_id, len(chunks), self._chunk_text(header, body), path))
        return chunks

    @staticmethod
    def _chunk_text(header: str, body: str) -> str:
        return f"{header}\n\n{body}" if header else body

    @staticmethod
    def _full_path(title: str, headings: list[str]) -> tuple[str, ...]:
        """(title, h1, h2, ...) without empty elements or a first heading repeating the title."""
        headings = [" ".join(h.split()) for h in headings if h.strip()]
        title = " ".join(title.split())
        if title and headings and _same_heading(headings[0], title):
            headings = headings[1:]
        return tuple(p for p in (title, *headings) if p)

    def _fit_path(self, path: tuple[str, ...], counter: _TokenCounter) -> tuple[str, ...]:
        """`path`, shortened to at most half the limit so every chunk keeps room for its body."""
        room = self.limit // 2
        if counter.count(" > ".join(path)) <= room:
            return path
        if len(path) > 2:
            path = (path[0], path[-1])
            if counter.count(" > ".join(path)) <= room:
                return path
        # Still too long: keep the first k words of each element, the largest k that fits.
        words = [p.split() for p in path]

        def cut(k: int) -> tuple[str, ...]:
            return tuple(p for p in (" ".join(w[:k]) for w in words) if p)

        low, high = 0, max(len(w) for w in words)
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if counter.count(" > ".join(cut(middle))) <= room else (low, middle - 1)
        return cut(low)

    def _pack(self, blocks: list[_Block], budget: int, counter: _TokenCounter) -> list[str]:
        """Chunk bodies of one section: pieces packed greedily, each chunk after the first opening
        with the last sentences of the one before."""
        sep = self._separator_tokens
        chunks: list[list[_Piece]] = []
        current: list[_Piece] = []
        used = 0
        for piece in self._pieces(blocks, budget, counter):
            if current and used + sep + piece.tokens > budget:
                chunks.append(current)
                room = min(self.settings.overlap_tokens, budget // 2, budget - sep - piece.tokens)
                overlap = self._overlap(current, room, counter)
                current, used = ([overlap], overlap.tokens) if overlap else ([], 0)
            used += piece.tokens + (sep if current else 0)
            current.append(piece)
        if current:
            chunks.append(current)
        return ["\n\n".join(piece.text for piece in chunk) for chunk in chunks]

    def _pieces(self, blocks: list[_Block], budget: int, counter: _TokenCounter) -> list[_Piece]:
        """The blocks, with any block larger than `budget` cut into parts that fit."""
        pieces: list[_Piece] = []
        for block in blocks:
            tokens = counter.count(block.text)
            if tokens <= budget:
                pieces.append(_Piece(block.text, tokens, is_code=block.code is not None))
                continue
            parts = self._split_code(block.code, budget, counter) if block.code else None
            if parts is None:
                # Smaller parts than the budget: each later part's chunk opens with an overlap.
                parts = self._split_prose(block.text, budget - min(self.settings.overlap_tokens, budget // 2), counter)
            pieces.extend(_Piece(p, n, is_code=block.code is not None) for p, n in zip(parts, counter.many(parts), strict=False))
        return pieces

    @staticmethod
    def _split_prose(text: str, budget: int, counter: _TokenCounter) -> list[str]:
        splitter = RecursiveCharacterTextSplitter(
            separators=_PROSE_SEPARATORS,
            is_separator_regex=True,
            keep_separator=True,
            chunk_size=budget,
            chunk_overlap=0,
            length_function=counter.count,
        )
        return [part for part in splitter.split_text(text) if part.strip()]

    def _split_code(self, code: _Code, budget: int, counter: _TokenCounter) -> list[str] | None:
        """Cut between lines; each part re-opens and closes the block, so each is valid markup.
        None when the fences would take more than half of every part (a tiny limit)."""
        fixed = max(counter.count("\n".join(code.head)), counter.count("\n".join(code.reopen))) + max(
            counter.count("\n".join(code.reclose)), counter.count("\n".join(code.tail))
        )
        room = budget - fixed
        if fixed > budget // 2:
            return None
        lines: list[str] = []
        for line, tokens in zip(code.body, counter.many(code.body), strict=False):
            # A line longer than a whole part (minified code) is cut between words.
            lines.extend(self._split_prose(line, room, counter) if tokens > room else [line])
        parts: list[list[str]] = [[]]
        used = 0
        for line, tokens in zip(lines, counter.many(lines), strict=False):
            if parts[-1] and used + tokens > room:
                parts.append([])
                used = 0
            parts[-1].append(line)
            used += tokens
        texts = []
        for number, part in enumerate(parts):
            head = code.head if number == 0 else code.reopen
            tail = code.tail if number == len(parts) - 1 else code.reclose
            while part and not part[0].strip():
                part = part[1:]
            while part and not part[-1].strip():
                part = part[:-1]
            texts.append("\n".join((*head, *part, *tail)).strip("\n"))
        return texts

    def _overlap(self, previous: list[_Piece], room: int, counter: _TokenCounter) -> _Piece | None:
        """The longest run of whole sentences or lines ending the previous chunk's prose that
        fits in `room` tokens; none after a code block."""
        if room <= 0:
            return None
        tail: list[str] = []
        for piece in reversed(previous):
            if piece.is_code or piece.is_overlap:
                break
            tail.append(piece.text)
        text = "\n\n".join(reversed(tail))
        # Counting every suffix of a long chunk would cost more than the chunk; a suffix of more
        # than 12 characters per allowed token is over the room with any real tokenizer.
        starts = [m.end() for m in _OVERLAP_START.finditer(text) if len(text) - m.end() <= room * 12]
        # A table row is one unit: a "sentence" that starts inside one is a fragment of a cell.
        starts = [s for s in starts if text[s - 1] == "\n" or not text[text.rfind("\n", 0, s) + 1 :].lstrip().startswith("|")]
        candidates = [c for c in (text[s:].strip() for s in starts) if any(ch.isalnum() for ch in c)]
        for candidate, tokens in zip(candidates, counter.many(candidates), strict=False):
            if tokens <= room:  # longest first
                return _Piece(candidate, tokens, is_overlap=True)
        return None


def chunker_for(embedder: Any, settings: ChunkingSettings) -> Chunker:
    """A Chunker that counts with `embedder`'s tokenizer and keeps chunks within what it reads."""
    return Chunker(
        settings,
        embedder.count_tokens,
        getattr(embedder, "max_input_tokens", None),
        getattr(embedder, "count_tokens_batch", None),
    )
