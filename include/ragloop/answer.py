"""Answering a question: retrieval from the knowledge base, then an answer that cites its sources.

1. With a chat model configured (`llm:` in sources.yaml), the `rewrite` prompt turns the question
   into a few search queries; retrieval runs hybrid search for the question and each rewrite and
   keeps each chunk's best score. Written-back answers (kind `qa`) take part and are marked.
2. The `answer` prompt gets the passages as delimited data and answers with [n] citations.
3. With no chat model (the offline default), or when the model fails, the answer is extractive:
   the sentences of the retrieved passages that best match the question, quoted with their
   citations, and it says so plainly.

Inside an active `RunRecorder`, every answer is recorded with its retrieval, tokens and latency.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, TypedDict

from ragloop.documents import Kind
from ragloop.errors import RagloopError
from ragloop.passages import Citation, Passage
from ragloop.prompts import escape_data, load_prompt

log = logging.getLogger(__name__)

MAX_REWRITES = 3
EXTRACTIVE_SENTENCES = 3
RELATIVE_FLOOR = 0.6  # a quoted sentence scores at least this share of the best one
# How much a passage's retrieval score counts next to a sentence's word overlap with the question.
# bench/retrieval.py: answers citing an expected document rose from 78 % at 0.3 to 88 % at 1.0
# (flat beyond): retrieval ranks better than word overlap alone.
SOURCE_SCORE_WEIGHT = 1.0
EXTRACTIVE_MODEL = "extractive"
EXTRACTIVE_NOTE = (
    "No language model is configured, so this is an extractive answer: the sentences below are quoted "
    "from the passages that best match your question."
)
FALLBACK_NOTE = (
    "The language model could not be reached, so this is an extractive answer: the sentences "
    "below are quoted from the passages that best match your question."
)
NOTHING_FOUND = "I found nothing in the knowledge base that answers this question."
WRITTEN_BACK_LABEL = "earlier answer, graded good"

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "should",
        "could",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "get",
        "got",
        "use",
        "using",
        "used",
        "make",
    ]
)
WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_'-]*")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*\"'(\[])")
LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")

# How the token counts of an answer were obtained (the run model stores it as this literal).
TokenSource = Literal["api", "tiktoken", "none", ""]


class AnswerError(RagloopError):
    pass


class QuotedSpan(TypedDict):
    """A sentence an extractive answer quoted: from source [source] (its chunk id), as quoted. The
    run records them (metadata "quoted_spans"); grading checks each against the chunk text the
    index holds, so an extractive answer is grounded by construction, verified, not trusted."""

    source: int
    chunk_id: str
    text: str


@dataclass
class Answer:
    question: str
    text: str
    mode: str  # "llm" or "extractive"
    model: str
    prompt: str  # name@version of the answer prompt, or "extractive"
    sources: list[Citation] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_source: TokenSource = "none"
    latency_ms: float = 0.0
    run_id: str | None = None  # set when an active recorder stored the run
    notes: list[str] = field(default_factory=list)
    quoted: list[QuotedSpan] = field(default_factory=list)  # what an extractive answer quoted
    # A curated answer served instead of a generated one: {run_id, doc_id, similarity} of the
    # written-back answer whose question matched (mode "curated").
    curated: dict | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        for source in data["sources"]:
            source["written_back"] = source["kind"] == Kind.QA
        return data


# --- retrieval ----------------------------------------------------------------------------------


def passage_text(hit) -> str:
    """The chunk's body: chunks embed their heading path as a first line, which a reader (and the
    answer) does not need twice."""
    text = hit.text
    if hit.heading_path and text.startswith(hit.heading_path):
        text = text[len(hit.heading_path) :].lstrip("\n")
    return text.strip()


def retrieve(
    client,
    collection: str,
    embedder,
    queries: list[str],
    limit: int,
    audience: str = "internal",
    written_back_share: float | None = None,
    adjust=None,
) -> list[Citation]:
    """Hybrid search for every query, never above `audience`; each chunk keeps its best score;
    the best `limit` chunks, of which written-back answers take at most `written_back_share`
    (None: search's default), over all the queries together as in each one. `adjust`: the
    feedback adjustments search applies (hidden chunks, boosts; see index.search)."""
    from ragloop.index.search import DEFAULT_WRITTEN_BACK_SHARE, search, written_back_cap

    share = DEFAULT_WRITTEN_BACK_SHARE if written_back_share is None else written_back_share
    best: dict[str, Passage] = {}
    for query in queries:
        for hit in search(
            client, collection, embedder, query, limit=limit, audience=audience, written_back_share=share, adjust=adjust
        ):
            if hit.chunk_id not in best or hit.score > best[hit.chunk_id].score:
                best[hit.chunk_id] = hit
    cap = written_back_cap(limit, share)
    ranked: list[Passage] = []
    for hit in sorted(best.values(), key=lambda h: -h.score):
        if hit.written_back and sum(h.written_back for h in ranked) >= cap:
            continue
        ranked.append(hit)
    ranked = ranked[:limit]
    return [Citation.cite(n, h, passage_text(h)) for n, h in enumerate(ranked, 1)]


def format_sources(sources: list[Citation]) -> str:
    """Passages as delimited data for the prompt. A passage cannot close its own tag early."""

    def attr(value: str) -> str:
        return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")

    blocks = []
    for s in sources:
        body = escape_data(s.text)
        blocks.append(
            f'<source id="{s.number}" kind="{attr(s.kind)}" title="{attr(s.title)}" url="{attr(s.url)}">\n{body}\n</source>'
        )
    return "\n".join(blocks)


# --- the extractive answer ----------------------------------------------------------------------


def _stems(text: str) -> set[str]:
    # Five-letter prefixes: "rotate", "rotation" and "rotating" meet; cheap and language-light.
    return {w.lower()[:5] for w in WORD.findall(text) if len(w) > 2 and w.lower() not in STOPWORDS}


def prose_sentences(text: str) -> list[str]:
    """The sentences of a passage's prose: code blocks (fenced, or indented under an rst
    directive) left out, hard-wrapped lines joined, list items kept apart."""
    units: list[str] = []
    paragraph: list[str] = []
    in_fence = in_directive = False

    def flush():
        if paragraph:
            units.append(" ".join(paragraph))
            paragraph.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if stripped.startswith(".. "):  # an rst directive: its indented body is code or markup
            flush()
            in_directive = True
            continue
        if in_directive:
            if not stripped or line[:1] in (" ", "\t"):
                continue
            in_directive = False
        if not stripped or stripped.startswith(("#", "|", "===", "---")):
            flush()
            continue
        if LIST_ITEM.match(stripped):
            flush()
            stripped = LIST_ITEM.sub("", stripped)
        paragraph.append(stripped)
    flush()
    return [sentence.strip() for unit in units for sentence in SENTENCE_END.split(unit) if sentence.strip()]


def extractive_quotes(question: str, sources: list[Citation]) -> list[QuotedSpan]:
    """The sentences of the passages that share the most words with the question, in source order,
    each with the source it is quoted from; a sentence found in two overlapping chunks is quoted once."""
    if not sources:
        return []
    wanted = _stems(question)
    candidates = []
    seen: set[str] = set()
    for source in sources:
        for position, sentence in enumerate(prose_sentences(source.text)):
            key = " ".join(sentence.lower().split())
            # A sentence that introduces what follows ("The header has the form:") says nothing alone.
            if key in seen or len(sentence.split()) < 4 or sentence.endswith(":"):
                continue
            seen.add(key)
            overlap = len(_stems(sentence) & wanted)
            if not overlap:
                continue
            score = overlap / math.sqrt(max(1, len(wanted))) + SOURCE_SCORE_WEIGHT * source.score
            candidates.append((score, source.number, position, sentence))
    if not candidates:
        first = sources[0]
        sentence = next((s for s in prose_sentences(first.text) if len(s.split()) >= 4), first.text[:300])
        candidates = [(0.0, first.number, 0, sentence)]
    ranked = sorted(candidates, reverse=True)
    # Sentences far weaker than the best one share a word or two by chance: leave them out.
    chosen = [c for c in ranked if c[0] >= RELATIVE_FLOOR * ranked[0][0]][:EXTRACTIVE_SENTENCES]
    chosen.sort(key=lambda c: (c[1], c[2]))
    by_number = {s.number: s for s in sources}
    return [QuotedSpan(source=number, chunk_id=by_number[number].chunk_id, text=sentence) for _, number, _, sentence in chosen]


def quoted_text(quotes: list[QuotedSpan], note: str = EXTRACTIVE_NOTE) -> str:
    """The extractive answer that shows these quotes."""
    if not quotes:
        return NOTHING_FOUND
    return f"{note}\n\n" + "\n".join(f"> {q['text']} [{q['source']}]" for q in quotes)


def extractive_answer(question: str, sources: list[Citation], note: str = EXTRACTIVE_NOTE) -> str:
    """The extractive answer to `question` from `sources` (see extractive_quotes)."""
    return quoted_text(extractive_quotes(question, sources), note)


# --- asking -------------------------------------------------------------------------------------


def _parse_rewrites(text: str, question: str) -> list[str]:
    try:
        data = json.loads(text)
        queries = data.get("queries") if isinstance(data, dict) else data
    except json.JSONDecodeError:
        queries = [line.strip(" -*\t") for line in text.splitlines()]
    if not isinstance(queries, list):
        return []
    seen = {question.strip().lower()}
    rewrites = []
    for query in queries:
        if isinstance(query, str) and query.strip() and query.strip().lower() not in seen and len(query) <= 500:
            seen.add(query.strip().lower())
            rewrites.append(query.strip())
    return rewrites[:MAX_REWRITES]


def ask(
    question: str,
    *,
    config_path: str | None = None,
    limit: int = 5,
    user_id: str | None = None,
    chat=None,
    weaviate_conn_id: str = "weaviate_default",
    audience: str = "internal",
    store=None,
) -> Answer:
    """Answer `question` from the knowledge base, from chunks the `audience` may see ("public":
    public chunks only); recorded when a RunRecorder is active, each source with its visibility.

    The run store (`store`; else the active recorder's; else the default one) supplies what
    feedback does to retrieval: chunks an operator hid are never retrieved; with
    `feedback_ranking.boosts` on, votes move the chunks they judged; with
    `feedback_ranking.curated_answers` on, a question matching a written-back answer's question
    is answered with it (mode "curated") without generating, the hit recorded on the run."""
    from ragloop.config import load_config

    question = question.strip()
    if not question:
        raise AnswerError("the question is empty")
    started = time.monotonic()
    config = load_config(config_path)
    notes: list[str] = []
    feedback_store, owns_store = _feedback_store(store, notes)
    try:
        return _ask(question, config, limit, user_id, chat, weaviate_conn_id, audience, feedback_store, started, notes)
    finally:
        if owns_store and feedback_store is not None:
            feedback_store.close()


def _feedback_store(store, notes: list[str]):
    """The run store feedback is read from (None when it cannot be opened: answering goes on
    without feedback, as it does without recording), and whether `ask` opened it (and closes it)."""
    from ragloop.runs import RunStore, RunStoreError, active_recorder

    if store is not None:
        return store, False
    try:
        recorder = active_recorder()
        if recorder is not None:
            return recorder.store, False
        return RunStore.default(), True
    except RunStoreError as err:
        _feedback_unavailable(notes, "no curated answers, hidden chunks or boosts", err)
        return None, False


def _ask(question: str, config, limit, user_id, chat, weaviate_conn_id, audience, store, started, notes: list[str]) -> Answer:
    from ragloop.chat import ChatError, ChatModel
    from ragloop.embedding import make_embedder
    from ragloop.feedback.boosts import BoostPolicy
    from ragloop.feedback.curated import find_curated
    from ragloop.index import connect
    from ragloop.runs import RetrievedSource, RunIn, RunStoreError, record_run

    ranking = config.feedback_ranking
    embedder = make_embedder(config.embedder)
    if ranking.curated_answers and store is not None:
        try:
            match = find_curated(store, embedder, question, audience=audience, threshold=ranking.curated_threshold)
        except RunStoreError as err:
            match = None
            _feedback_unavailable(notes, "no curated answer looked up", err)
        if match is not None:
            return serve_curated(question, match, store, user_id=user_id, audience=audience, started=started)
    policy = BoostPolicy(half_life_days=ranking.half_life_days)

    def adjust(chunk_ids: list[str]):
        # A run store that cannot be read does not stop answering (as recording never does):
        # the answer says retrieval went without feedback, and the log says why.
        if store is None:
            return {}
        try:
            return store.chunk_adjustments(chunk_ids, audience=audience, policy=policy, boosts_on=ranking.boosts)
        except RunStoreError as err:
            _feedback_unavailable(notes, "retrieval without feedback (hidden chunks, boosts)", err)
            return {}

    owns_chat = chat is None and config.llm is not None
    if owns_chat:
        chat = ChatModel(config.llm)
    answer_prompt = load_prompt("answer")
    tokens = {"prompt": 0, "completion": 0}
    token_sources: set[str] = set()
    rewrites: list[str] = []
    quoted: list[QuotedSpan] = []
    try:
        if chat is not None:
            rewrite_prompt = load_prompt("rewrite")
            try:
                reply = chat.complete(rewrite_prompt, product=config.product, question=question, count=str(MAX_REWRITES))
                tokens["prompt"] += reply.prompt_tokens
                tokens["completion"] += reply.completion_tokens
                token_sources.add(reply.token_source)
                rewrites = _parse_rewrites(reply.text, question)
            except ChatError as err:
                log.warning("Question not rewritten (searching with the question alone): %s", err)
                notes.append(f"rewrite failed: {err}")
        with connect(weaviate_conn_id) as client:
            sources = retrieve(
                client, config.collection, embedder, [question, *rewrites], limit, audience, config.written_back_share, adjust
            )

        mode, model, prompt_label, text = "extractive", EXTRACTIVE_MODEL, EXTRACTIVE_MODEL, None
        if chat is not None and sources:
            try:
                reply = chat.complete(answer_prompt, product=config.product, question=question, sources=format_sources(sources))
                tokens["prompt"] += reply.prompt_tokens
                tokens["completion"] += reply.completion_tokens
                token_sources.add(reply.token_source)
                mode, model, prompt_label, text = "llm", reply.model, answer_prompt.label, reply.text.strip()
            except ChatError as err:
                log.error("Answering with the extractive fallback: %s", err)
                notes.append(f"language model failed: {err}")
                quoted = extractive_quotes(question, sources)
                text = quoted_text(quoted, note=FALLBACK_NOTE)
        if text is None:
            quoted = extractive_quotes(question, sources)
            text = quoted_text(quoted)
    finally:
        if owns_chat:
            chat.close()

    token_source: TokenSource = "none" if not token_sources else ("api" if token_sources == {"api"} else "tiktoken")
    answer = Answer(
        question=question,
        text=text,
        mode=mode,
        model=model,
        prompt=prompt_label,
        sources=sources,
        rewrites=rewrites,
        prompt_tokens=tokens["prompt"],
        completion_tokens=tokens["completion"],
        token_source=token_source,
        latency_ms=round((time.monotonic() - started) * 1000, 1),
        notes=notes,
        quoted=quoted,
    )
    prompt_name, _, prompt_version = prompt_label.partition("@")
    answer.run_id = record_run(
        RunIn(
            question=question,
            rewrites=rewrites,
            sources=[RetrievedSource.from_passage(s) for s in sources],
            answer=text,
            model=model,
            prompt_name=prompt_name,
            prompt_version=prompt_version,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            token_source=token_source,
            latency_ms=answer.latency_ms,
            user_id=user_id,
            metadata={
                "mode": mode,
                "collection": config.collection,
                "embedder": embedder.name,
                **({"notes": notes} if notes else {}),
                **({"quoted_spans": quoted} if quoted else {}),
            },
        )
    )
    return answer


def _feedback_unavailable(notes: list[str], what: str, err: Exception) -> None:
    note = f"run store unavailable, {what}: {err}"
    if note not in notes:
        log.error("Answering with %s", note)
        notes.append(note)


def curated_answer(
    question: str,
    *,
    config_path: str | None = None,
    store=None,
    user_id: str | None = None,
    audience: str = "internal",
) -> Answer | None:
    """For apps that generate their own answers and record them with a RunRecorder: the curated
    answer to serve for `question` (recorded as a curated hit in the active recorder), or None
    when none matches or `feedback_ranking.curated_answers` is off; then generate as usual."""
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.feedback.curated import find_curated
    from ragloop.runs import RunStoreError

    started = time.monotonic()
    config = load_config(config_path)
    if not config.feedback_ranking.curated_answers:
        return None
    # A run store that cannot be opened or read means no curated answer (logged): the app
    # generates as usual, as answering never breaks on the run store.
    feedback_store, owns_store = _feedback_store(store, [])
    if feedback_store is None:
        return None
    try:
        embedder = make_embedder(config.embedder)
        threshold = config.feedback_ranking.curated_threshold
        try:
            match = find_curated(feedback_store, embedder, question.strip(), audience=audience, threshold=threshold)
        except RunStoreError as err:
            _feedback_unavailable([], "no curated answer looked up", err)
            return None
        if match is None:
            return None
        return serve_curated(question.strip(), match, feedback_store, user_id=user_id, audience=audience, started=started)
    finally:
        if owns_store:
            feedback_store.close()


def serve_curated(question: str, match, store, *, user_id: str | None, audience: str, started: float) -> Answer:
    """Answer with a curated (written-back) answer, as the matched run answered it: its text and
    its sources, numbered as it cited them; recorded (inside a recorder) as a run of mode
    "curated" whose metadata names the curated run, so votes on it reach that answer."""
    from ragloop.feedback.curated import CURATED_MODEL, CURATED_NOTE
    from ragloop.runs import RetrievedSource, RunIn, record_run

    curated_run = store.get_run(match.curated.run_id, audience=audience)
    records = [s for s in curated_run.get("sources") or [] if isinstance(s, dict)]
    sources = [Citation.from_record(number, record) for number, record in enumerate(records, 1)]
    hit = {"run_id": match.curated.run_id, "doc_id": match.curated.doc_id, "similarity": match.similarity}
    notes = [f"{CURATED_NOTE} (question similarity {match.similarity:.2f})"]
    answer = Answer(
        question=question,
        text=match.curated.answer,
        mode=CURATED_MODEL,
        model=CURATED_MODEL,
        prompt=CURATED_MODEL,
        sources=sources,
        latency_ms=round((time.monotonic() - started) * 1000, 1),
        notes=notes,
        curated=hit,
    )
    answer.run_id = record_run(
        RunIn(
            question=question,
            sources=[RetrievedSource.model_validate({k: r[k] for k in RetrievedSource.model_fields if k in r}) for r in records],
            answer=match.curated.answer,
            model=CURATED_MODEL,
            prompt_name=CURATED_MODEL,
            token_source="none",
            latency_ms=answer.latency_ms,
            user_id=user_id,
            metadata={"mode": CURATED_MODEL, "curated": hit, "notes": notes},
        )
    )
    return answer


def format_answer(answer: Answer) -> str:
    """The answer for a terminal: text, numbered sources (written-back answers marked), run id."""
    lines = [answer.text, ""]
    if answer.sources:
        lines.append("Sources:")
        for s in answer.sources:
            mark = f" ({WRITTEN_BACK_LABEL})" if s.written_back else ""
            lines.append(f"  [{s.number}] {s.title}{mark}  {s.url or s.doc_id}")
    how = (
        f"answered by {answer.model}, {answer.prompt_tokens}+{answer.completion_tokens} tokens ({answer.token_source})"
        if answer.mode == "llm"
        else f"curated answer of run {answer.curated['run_id']} (question similarity {answer.curated['similarity']:.2f})"
        if answer.curated
        else "extractive answer, no language model"
    )
    lines.append(f"{how}, {answer.latency_ms:.0f} ms" + (f"; run {answer.run_id}" if answer.run_id else "; not recorded"))
    return "\n".join(lines)
