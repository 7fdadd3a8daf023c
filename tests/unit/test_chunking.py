"""Chunking: heading paths, token limits, code blocks, overlap, and that an edit in one section
leaves every other section's chunks byte-identical. Tokens are counted with the real
all-MiniLM-L6-v2 word-piece tokenizer (no torch)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragloop.chunking import CHUNKER_VERSION, Chunker, ChunkingSettings, chunker_for
from ragloop.documents import Document
from ragloop.embedding import HashEmbedder
import itertools

SAMPLES = Path(__file__).resolve().parents[2] / "include" / "samples" / "docs"


@pytest.fixture(scope="module")
def embedder() -> HashEmbedder:
    return HashEmbedder()


def chunker(embedder, max_tokens: int = 256, overlap_tokens: int = 32) -> Chunker:
    return Chunker(ChunkingSettings(max_tokens, overlap_tokens), embedder.count_tokens,
                   count_tokens_batch=embedder.count_tokens_batch)


def doc(content: str, title: str = "Guide", fmt: str | None = None, doc_id: str = "src:guide.md") -> Document:
    return Document(doc_id=doc_id, source_id="src", kind="docs", title=title, content=content,
                    metadata={"format": fmt} if fmt else {})


def body(chunk) -> str:
    prefix = " > ".join(chunk.heading_path)
    return chunk.text[len(prefix) + 2:] if prefix else chunk.text


def prose(section: int, sentences: int) -> str:
    """Distinct sentences, so any duplicated text in the output is overlap."""
    return " ".join(f"Section {section} sentence {n} explains the cache and the queue worker {n * 7}."
                    for n in range(sentences))


def overlap_between(previous: str, following: str) -> str:
    """The longest suffix of `previous` (starting after whitespace) that `following` starts with."""
    for match in re.finditer(r"\s+", previous):
        suffix = previous[match.end():]
        if following.startswith(suffix):
            return suffix
    return ""


# --- heading paths --------------------------------------------------------------------------------

def test_markdown_heading_paths_dedupe_title_and_ignore_headings_in_fences(embedder):
    content = "\n".join([
        "# Python SDK (`fernwood-py`)",
        "Intro paragraph.",
        "## Install",
        "Run the installer.",
        "```bash",
        "# not a heading",
        "pip install fernwood",
        "```",
        "### On Linux",
        "Use the package manager.",
        "~~~markdown",
        "```python",
        "## also not a heading",
        "```",
        "~~~",
        "Still under Linux.",
        "## Use ##",
        "Call the client.",
    ])
    chunks = chunker(embedder).split(doc(content, title="Python SDK (fernwood-py)"))
    paths = [c.heading_path for c in chunks]
    assert paths == [
        ("Python SDK (fernwood-py)",),
        ("Python SDK (fernwood-py)", "Install"),
        ("Python SDK (fernwood-py)", "Install", "On Linux"),
        ("Python SDK (fernwood-py)", "Use"),
    ]
    assert chunks[1].text.startswith("Python SDK (fernwood-py) > Install\n\nRun the installer.")
    assert "# not a heading" in chunks[1].text and "## also not a heading" in chunks[2].text
    assert "Still under Linux." in chunks[2].text
    assert not any("## Install" in c.text or "### On Linux" in c.text for c in chunks)  # heading lines not repeated


def test_rst_heading_levels_follow_first_appearance(embedder):
    content = "\n".join([
        "=======", "Logging", "=======", "",
        "Intro.", "",
        "Setup", "-----", "",
        "Setup text::", "",
        "   Looks like", "   ==========", "",
        "Details", "~~~~~~~", "",
        ".. code-block:: text", "",
        "   Not a title", "   ~~~~~~~~~~~~~", "",
        "Detail text.", "",
        "Rotation", "--------", "",
        "Rotation text.", "",
        "Appendix", "========", "",
        "Appendix text.",
    ])
    chunks = chunker(embedder).split(doc(content, title="Logging", fmt="rst"))
    assert [c.heading_path for c in chunks] == [
        ("Logging",),
        ("Logging", "Setup"),
        ("Logging", "Setup", "Details"),
        ("Logging", "Rotation"),
        # "=" underline alone is a new style (the title had an overline): a level below Details' order
        ("Logging", "Rotation", "Appendix"),
    ]
    assert "Looks like" in chunks[1].text and "Not a title" in chunks[2].text


def test_text_format_has_no_headings(embedder):
    chunks = chunker(embedder).split(doc("# Not a heading\n\nJust text.", title="Notes", fmt="text"))
    assert [(c.heading_path, c.text) for c in chunks] == [(("Notes",), "Notes\n\n# Not a heading\n\nJust text.")]


def test_no_title_and_no_headings_gives_bare_body(embedder):
    chunks = chunker(embedder).split(doc("Only a paragraph.", title=""))
    assert [(c.heading_path, c.text) for c in chunks] == [((), "Only a paragraph.")]


def test_empty_sections_and_documents_give_no_chunks(embedder):
    chunker_ = chunker(embedder)
    assert chunker_.split(doc("")) == []
    assert chunker_.split(doc("  \n\n\t \n")) == []
    assert chunker_.split(doc("# Guide\n\n## Empty\n")) == []
    chunks = chunker_.split(doc("## Parent\n\n### Child\n\nChild text.\n"))
    assert [c.heading_path for c in chunks] == [("Guide", "Parent", "Child")]


def test_unknown_format_is_refused(embedder):
    with pytest.raises(ValueError, match="format"):
        chunker(embedder).split(doc("text", fmt="md"))


def test_unclosed_fence_keeps_its_text_and_hides_later_headings(embedder):
    chunks = chunker(embedder).split(doc("Before.\n\n```python\nx = 1\n# comment\ny = 2\n"))
    assert len(chunks) == 1 and "y = 2" in chunks[0].text and chunks[0].heading_path == ("Guide",)


def test_long_heading_path_leaves_room_for_the_body(embedder):
    long_heading = " ".join(f"word{n}" for n in range(80))
    content = f"## First\n\n### {long_heading}\n\n{prose(1, 12)}"
    chunks = chunker(embedder, max_tokens=64).split(doc(content))
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= 64
        assert embedder.count_tokens(" > ".join(chunk.heading_path)) <= 32
        assert chunk.heading_path[0] == "Guide" and "First" not in chunk.heading_path
        assert chunk.heading_path[-1].startswith("word0 word1")
        assert body(chunk).strip()


# --- sizes and code blocks ------------------------------------------------------------------------

def long_document() -> str:
    code = "\n".join(f"    call_step_{n}(argument={n}, retries=3)  # step {n}" for n in range(60))
    items = "\n".join(f"- Item {n} restarts the worker pool and drains queue {n}." for n in range(40))
    return "\n\n".join([
        prose(0, 30),
        "## Long list",
        items,
        "## Long code",
        f"```python\ndef run():\n{code}\n```",
        "## Long words",
        " ".join(["Supercalifragilisticexpialidocious-antidisestablishmentarianism"] * 40),
        "unbroken" * 400,
        "## Table",
        "| a | b |\n|---|---|\n" + "\n".join(f"| row {n} | value {n} is long enough |" for n in range(50)),
    ])


@pytest.mark.parametrize("max_tokens", [64, 254])
def test_every_chunk_fits_the_limit(embedder, max_tokens):
    chunks = chunker(embedder, max_tokens=max_tokens).split(doc(long_document()))
    assert len(chunks) > 5
    counts = [embedder.count_tokens(c.text) for c in chunks]
    assert max(counts) <= max_tokens
    assert all(body(c).strip() for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert {c.doc_id for c in chunks} == {"src:guide.md"}


def test_code_block_that_fits_is_kept_whole(embedder):
    code = "```bash\n" + "\n".join(f"fernctl restart --node {n}" for n in range(8)) + "\n```"
    content = f"## Run\n\n{prose(1, 6)}\n\n{code}\n\n{prose(2, 6)}"
    chunks = chunker(embedder, max_tokens=128).split(doc(content))
    assert len(chunks) > 2
    assert sum(code in c.text for c in chunks) == 1
    assert sum("```" in c.text for c in chunks) == 1  # never cut, and never used as overlap


def test_code_block_too_large_is_split_into_valid_fenced_parts(embedder):
    lines = [f"    value_{n} = compute({n})  # line {n}" for n in range(80)]
    content = "## Code\n\n```python\ndef build():\n" + "\n".join(lines) + "\n```\n"
    chunks = chunker(embedder, max_tokens=96).split(doc(content))
    assert len(chunks) > 2
    recovered = []
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= 96
        part = body(chunk).split("\n")
        assert part[0] == "```python" and part[-1] == "```"
        recovered.extend(part[1:-1])
    assert recovered == ["def build():", *lines]  # cut between lines only, nothing lost or repeated


def test_long_paragraph_is_cut_between_words(embedder):
    paragraph = prose(3, 40)
    chunks = chunker(embedder, max_tokens=64, overlap_tokens=0).split(doc(paragraph, fmt="text"))
    assert len(chunks) > 3
    words = set(paragraph.split())
    assert all(set(body(c).split()) <= words for c in chunks)
    assert " ".join(body(c) for c in chunks).split() == paragraph.split()


# --- overlap --------------------------------------------------------------------------------------

def test_overlap_is_present_and_bounded(embedder):
    paragraph = prose(4, 40)
    chunks = chunker(embedder, max_tokens=96, overlap_tokens=32).split(doc(paragraph, fmt="text"))
    assert len(chunks) > 3
    for previous, following in itertools.pairwise(chunks):
        shared = overlap_between(body(previous), body(following))
        assert shared, "consecutive chunks of one section share their boundary sentences"
        assert shared.startswith("Section 4 sentence")  # whole sentences
        assert 0 < embedder.count_tokens(shared) <= 32
        assert embedder.count_tokens(following.text) <= 96


def test_no_overlap_when_zero(embedder):
    paragraph = prose(4, 40)
    chunks = chunker(embedder, max_tokens=96, overlap_tokens=0).split(doc(paragraph, fmt="text"))
    assert len(chunks) > 3
    for previous, following in itertools.pairwise(chunks):
        assert len(overlap_between(body(previous), body(following)).split()) < 2


def test_overlap_never_crosses_sections(embedder):
    content = f"## One\n\n{prose(1, 20)}\n\n## Two\n\n{prose(2, 20)}"
    chunks = chunker(embedder, max_tokens=96, overlap_tokens=32).split(doc(content))
    second = [c for c in chunks if c.heading_path[-1] == "Two"]
    assert body(second[0]).startswith("Section 2 sentence 0 ")
    assert not any("Section 1" in body(c) for c in second)


# --- incrementality, determinism, settings --------------------------------------------------------

def ten_sections(edited: int | None = None) -> str:
    sections = []
    for n in range(10):
        paragraphs = [prose(n, 6), prose(n + 100, 6), f"```\nstep {n}\n```", prose(n + 200, 6)]
        if n == edited:
            paragraphs[1] = paragraphs[1].replace("explains the cache", "explains the edited cache", 1)
        sections.append(f"## Part {n}\n\n" + "\n\n".join(paragraphs))
    return "\n\n".join(sections)


def test_editing_one_paragraph_changes_only_its_sections_chunks(embedder):
    chunker_ = chunker(embedder, max_tokens=96)
    before = chunker_.split(doc(ten_sections()))
    after = chunker_.split(doc(ten_sections(edited=4)))

    def by_section(chunks):
        return {n: [c.text for c in chunks if c.heading_path[-1] == f"Part {n}"] for n in range(10)}

    old, new = by_section(before), by_section(after)
    assert all(len(texts) > 1 for texts in old.values())
    assert old[4] != new[4]
    assert {n: t for n, t in old.items() if n != 4} == {n: t for n, t in new.items() if n != 4}
    changed_hashes = {c.chunk_hash for c in after} - {c.chunk_hash for c in before}
    assert changed_hashes and all(
        c.heading_path[-1] == "Part 4" for c in after if c.chunk_hash in changed_hashes
    )


def test_same_input_gives_identical_output(embedder):
    first = chunker(embedder, max_tokens=64).split(doc(long_document()))
    second = chunker(embedder, max_tokens=64).split(doc(long_document()))
    assert first == second and [c.chunk_hash for c in first] == [c.chunk_hash for c in second]


def test_chunker_for_respects_the_models_input_limit(embedder):
    # One-token paragraphs let greedy packing fill a chunk to the exact limit.
    content = "\n\n".join(["alpha"] * 2000)
    settings = ChunkingSettings(max_tokens=256, overlap_tokens=0)
    unbounded = Chunker(settings, embedder.count_tokens, count_tokens_batch=embedder.count_tokens_batch)
    assert max(embedder.count_tokens(c.text) for c in unbounded.split(doc(content))) == 256
    bounded = chunker_for(embedder, settings)
    assert bounded.limit == 254
    assert max(embedder.count_tokens(c.text) for c in bounded.split(doc(content))) == 254


def test_tokens_are_counted_in_batches_not_per_word(embedder):
    single_calls = []

    def count_one(text: str) -> int:
        single_calls.append(text)
        return embedder.count_tokens(text)

    chunker_ = Chunker(ChunkingSettings(96, 16), count_one, count_tokens_batch=embedder.count_tokens_batch)
    content = ten_sections()
    chunks = chunker_.split(doc(content))
    assert len(chunks) > 20
    assert len(single_calls) <= 5 < len(content.split()) // 50


def test_signature_names_version_and_settings():
    base = ChunkingSettings()
    assert base.signature == f"v{CHUNKER_VERSION}:max=256:overlap=32"
    assert ChunkingSettings(max_tokens=128).signature != base.signature
    assert ChunkingSettings(overlap_tokens=0).signature != base.signature
    assert ChunkingSettings().signature == base.signature
    with pytest.raises(ValueError, match="Chunking needs max_tokens"):
        ChunkingSettings(max_tokens=0)


# --- the bundled sample docs ----------------------------------------------------------------------

@pytest.mark.parametrize("max_tokens", [64, 256])
def test_sample_docs_split_within_limit(embedder, max_tokens):
    files = sorted(SAMPLES.rglob("*.md")) + sorted(SAMPLES.rglob("*.rst"))
    assert any(f.suffix == ".rst" for f in files) and len(files) > 20
    chunker_ = chunker_for(embedder, ChunkingSettings(max_tokens=max_tokens))
    for path in files:
        fmt = "rst" if path.suffix == ".rst" else "markdown"
        chunks = chunker_.split(doc(path.read_text(), title=path.stem, fmt=fmt, doc_id=f"samples:{path.name}"))
        assert chunks, path
        for chunk in chunks:
            assert embedder.count_tokens(chunk.text) <= min(max_tokens, 254), (path, chunk.index)
            assert body(chunk).strip(), (path, chunk.index)


def test_limit_holds_when_joined_text_counts_more_than_its_parts():
    # A counter that is not additive (like BPE merges across block boundaries, only worse): the
    # sum of the blocks' counts underestimates a chunk, so chunks must be counted whole.
    def count(text: str) -> int:
        words = len(text.split())
        return words + words * words // 100

    content = "\n\n".join(f"Paragraph {n} has ten words in it, no more than ten." for n in range(30))
    chunks = Chunker(ChunkingSettings(64, 8), count).split(doc(content))
    assert len(chunks) > 5 and max(count(c.text) for c in chunks) <= 64
    assert " ".join(body(c) for c in chunks).count("Paragraph") >= 30
