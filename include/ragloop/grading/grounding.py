"""What a run's sources really say: the chunk text the index holds for the chunk ids the run
cites. Through the runs API the caller supplies the sources, so a phishing answer with a made-up
source that agrees with it would otherwise be "grounded"; grading and write-back read the
index's text instead, and a cited chunk that is not in the index, or whose recorded text is not
the index's, vetoes the run."""

from __future__ import annotations

from ragloop.grading.checks import Veto, cited_numbers

SOURCE_NOT_INDEXED = "source_not_indexed"
SOURCE_TEXT_DIFFERS = "source_text_differs"


def _squeezed(text: str) -> str:
    return " ".join((text or "").split())


def _passage(chunk: dict) -> str:
    """The chunk's body as `ask` records it: without the heading line it starts with."""
    text, heading = chunk.get("text") or "", chunk.get("heading_path") or ""
    if heading and text.startswith(heading):
        text = text[len(heading) :]
    return text.strip()


def chunk_ids_of(runs: list[dict]) -> list[str]:
    """The chunk ids these runs cite, for one read of the index. A batch-wide step, so it reads
    leniently: a run whose sources are malformed fails later, alone, in `verify_sources`."""
    ids = []
    for run in runs:
        sources = run.get("sources")
        for source in sources if isinstance(sources, list) else []:
            if isinstance(source, dict) and isinstance(source.get("chunk_id"), str) and source["chunk_id"]:
                ids.append(source["chunk_id"])
    return ids


def verify_sources(run: dict, indexed: dict[str, dict]) -> tuple[dict, list[Veto]]:
    """The run with each source's doc id, title, URL, kind, visibility and text taken from the
    index (`indexed`: chunk id -> chunk, from `index.fetch_chunks`), and a veto for each cited
    source the index does not hold, or holds with other text. Uncited sources the index lacks keep
    no text, so a judge never reads the caller's."""
    cited = cited_numbers(run.get("answer") or "")
    sources, vetoes = [], []
    for number, source in enumerate(run.get("sources") or [], 1):
        chunk = indexed.get(str(source.get("chunk_id") or ""))
        if chunk is None:
            if number in cited:
                label = repr(source.get("chunk_id")) if source.get("chunk_id") else "no chunk id"
                vetoes.append(Veto(SOURCE_NOT_INDEXED, f"cited source [{number}] ({label}) is not in the index"))
            sources.append({**source, "text": ""})
            continue
        claimed = _squeezed(source.get("text") or "")
        if number in cited and claimed and claimed not in (_squeezed(_passage(chunk)), _squeezed(chunk["text"])):
            vetoes.append(
                Veto(SOURCE_TEXT_DIFFERS, f"cited source [{number}] ({source.get('chunk_id')}) says other than the index holds")
            )
        sources.append(
            {
                **source,
                **{key: chunk.get(key) or "" for key in ("doc_id", "title", "url", "kind")},
                "visibility": chunk.get("visibility") or "",
                "text": _passage(chunk),
            }
        )
    return {**run, "sources": sources}, vetoes
