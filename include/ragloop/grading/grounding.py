"""What a run's sources really say: the chunk text the index holds for the chunk ids the run
cites. Through the runs API the caller supplies the sources, so a phishing answer with a made-up
source that agrees with it would otherwise be "grounded"; grading and write-back read the
index's text instead, and a cited chunk that is not in the index, or whose recorded text is not
the index's, vetoes the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import re
from dataclasses import dataclass
from functools import lru_cache

from ragloop.answer import LIST_ITEM, SENTENCE_END, STOPWORDS
from ragloop.grading.checks import CITATION, Veto, answer_body, cited_numbers, normalized
import itertools

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun

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


def chunk_ids_of(runs: list[QaRun]) -> list[str]:
    """The chunk ids these runs cite, for one read of the index. A batch-wide step, so it reads
    leniently: a run whose sources are malformed fails later, alone, in `verify_sources`."""
    ids = []
    for run in runs:
        sources = run.get("sources")
        for source in sources if isinstance(sources, list) else []:
            if isinstance(source, dict) and isinstance(source.get("chunk_id"), str) and source["chunk_id"]:
                ids.append(source["chunk_id"])
    return ids


def verify_sources(run: QaRun, indexed: dict[str, dict]) -> tuple[QaRun, list[Veto]]:
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


# --- grounding of every unit -----------------------------------------------------------------------
# An answer is written back only when every one of its units (sentence, list item, table row,
# heading, code block, link) is supported by the cited chunks the index holds. Embedding similarity
# alone reads "Keys never expire." or "grace period 90 days" as supported (same words, same topic),
# so a prose unit must also carry nothing the cited text does not: its numbers, versions,
# identifiers, inline code and URLs must be there, in one place of the text (a sentence, or two
# consecutive ones), with most of its content words and any negation it states. Code blocks and
# links are compared as text. An instruction addressed to the assistant, in any language or
# spelling, states content no cited chunk holds, so it is refused here before any phrase list
# (checks.py) sees it.

UNSUPPORTED_CONTENT = "unsupported_content"

# Thresholds, from bench/grounding.py's sweep on the tuning split of its public-docs pairs (the
# report split's figures are in docs/grounding.md): cosine of a unit with a window of the cited
# text (all-MiniLM-L6-v2), and the share of the unit's content words found in that window. The
# refusals barely move with them (the facts and negation rules refuse the changed answers); the
# faithful answers kept are flat for similarity 0.50-0.75 and coverage 0.40-0.50 and fall beyond;
# these sit inside that plateau, away from its edges.
UNIT_SIMILARITY_THRESHOLD = 0.70
UNIT_COVERAGE_THRESHOLD = 0.50
NEGATION_SCOPE = 3  # content words after a negation that it may govern
SHORT_UNIT_WORDS = 3  # content words; a shorter unit needs all of them in one place, not the similarity

FENCE = re.compile(r"^\s*(```|~~~)")
TABLE_SEPARATOR = re.compile(r"^\|?[\s:|-]+\|?$")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
LINK = re.compile(r"\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
URL = re.compile(r"(?:https?|ftp|ragloop|javascript|data|file)://[^\s<>()\[\]\"'`]+|(?:javascript|data):[^\s<>\"'`]+", re.I)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
NUMBER = re.compile(r"(?<![\w.])[vV]?(\d+(?:[.,:]\d+)*)(?![\d])")  # a version's "v" is no part of it
# An identifier: a word with a digit, an underscore, an inner capital or an inner dot, or a flag.
IDENTIFIER = re.compile(r"(?<![\w-])(?:--?[A-Za-z][\w-]*|[A-Za-z_][\w.-]*[\w])(?![\w-])")
NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "thirty": "30",
    "hundred": "100", "thousand": "1000",
}  # fmt: skip
NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nothing",
        "nobody",
        "neither",
        "nor",
        "cannot",
        "can't",
        "won't",
        "don't",
        "doesn't",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "shouldn't",
        "mustn't",
        "without",
        "non",
        "unless",
    ]
)
# The answer's stopwords (ragloop.answer.STOPWORDS), less "no", "not" and "yes", which decide
# what a unit of an answer says, plus filler common in answers.
UNIT_STOPWORDS = (STOPWORDS - {"no", "not", "yes"}) | frozenset(
    [
        "all",
        "also",
        "any",
        "each",
        "every",
        "it's",
        "just",
        "more",
        "most",
        "only",
        "other",
        "some",
        "such",
        "than",
        "them",
        "they",
        "us",
        "very",
        "we",
        "you're",
    ]
)
REPLY_WORDS = frozenset(["yes", "no", "not", "yet", "correct", "right", "sure", "indeed", "exactly"])
WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.U)


@dataclass(frozen=True)
class AnswerUnit:
    kind: str  # sentence | list_item | table_row | heading | code | link
    text: str  # as the answer shows it, citations removed


@dataclass(frozen=True)
class UnitSupport:
    unit: AnswerUnit
    supported: bool
    why: str  # what supports it, or what is missing
    similarity: float | None = None
    coverage: float | None = None


def _strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(CITATION.sub("", text).split()))


def _plain(text: str) -> str:
    """Prose without markdown: link targets and emphasis marks dropped, link texts kept."""
    text = LINK.sub(lambda m: m.group(1), text)
    return " ".join(re.sub(r"[*_`]{1,3}(?=\S)|(?<=\S)[*_`]{1,3}", "", text).split())


def split_units(text: str) -> list[AnswerUnit]:
    """The units of an answer (or of a cited passage): fenced and indented code blocks, table rows,
    headings, list items, sentences; and each link (markdown or bare URL) once more as a unit of its
    own. Citations are removed; a table's separator row is no unit."""
    units: list[AnswerUnit] = []
    paragraph: list[str] = []
    code: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            joined = " ".join(paragraph)
            for sentence in SENTENCE_END.split(joined):
                if _strip_citations(sentence):
                    units.append(AnswerUnit("sentence", _strip_citations(sentence)))
            paragraph.clear()

    def flush_code() -> None:
        if code:
            units.append(AnswerUnit("code", "\n".join(code)))
            code.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if FENCE.match(line):
            flush()
            if in_fence:
                flush_code()
            in_fence = not in_fence
            continue
        if in_fence:
            if stripped:
                code.append(line)
            continue
        if line.startswith(("    ", "\t")) and stripped and not paragraph:
            code.append(line)
            continue
        flush_code()
        if not stripped:
            flush()
            continue
        if stripped.startswith("|"):
            flush()
            if not TABLE_SEPARATOR.match(stripped):
                cells = [c.strip() for c in stripped.strip("|").split("|")]
                units.append(AnswerUnit("table_row", _strip_citations(" | ".join(cells))))
            continue
        if HEADING.match(stripped):
            flush()
            units.append(AnswerUnit("heading", _strip_citations(HEADING.sub("", stripped).rstrip("#").strip())))
            continue
        if LIST_ITEM.match(stripped):
            flush()
            for sentence in SENTENCE_END.split(LIST_ITEM.sub("", stripped)):
                if _strip_citations(sentence):
                    units.append(AnswerUnit("list_item", _strip_citations(sentence)))
            continue
        paragraph.append(stripped)
    flush()
    flush_code()
    links = [m.group(2) for m in LINK.finditer(text)] + [m.group(0).rstrip(".,;:!?") for m in URL.finditer(LINK.sub(" ", text))]
    units += [AnswerUnit("link", link) for link in dict.fromkeys(links)]
    return units


def _stem(word: str) -> str:
    """A light stemmer: enough for "keys"/"key", "rotating"/"rotation"/"rotate" to meet."""
    word = word.lower()
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:5]


@lru_cache(maxsize=1 << 16)
def content_stems(text: str) -> frozenset[str]:
    words = WORDS.findall(_plain(text).lower())
    return frozenset(_stem(NUMBER_WORDS.get(w, w)) for w in words if w not in UNIT_STOPWORDS and not w.isdigit())


@lru_cache(maxsize=1 << 16)
def negation_scopes(text: str) -> tuple[tuple[str, ...], ...]:
    """For each negation ("not", "never", "no", "cannot", "…n't", "without", "non-"), the content
    words it governs: the next NEGATION_SCOPE content words, nearest first ("<not>" when none)."""
    words = WORDS.findall(_plain(text).lower().replace("’", "'").replace("non-", "non "))
    scopes = []
    for index, word in enumerate(words):
        if word in NEGATIONS or word.endswith("n't"):
            following = [w for w in words[index + 1 : index + 1 + 2 * NEGATION_SCOPE] if w not in UNIT_STOPWORDS]
            scopes.append(tuple(_stem(w) for w in following[:NEGATION_SCOPE]) or ("<not>",))
    return tuple(scopes)


@lru_cache(maxsize=1 << 16)
def negated_stems(text: str) -> frozenset[str]:
    """Every content word a negation in `text` governs."""
    return frozenset(stem for scope in negation_scopes(text) for stem in scope)


def same_polarity(unit_text: str, unit_stems: frozenset[str], window: str) -> bool:
    """Whether `window` negates what the unit negates and states plainly what the unit states
    plainly: each negation of the unit governs a word the window's negations govern too ("Keys
    never expire" needs a negated "expire"), and no negation of the window governs, as its nearest
    word, a word the unit states without one ("Keys expire" where the docs say "never expire")."""
    window_negates = negated_stems(window)
    unit_negates = negated_stems(unit_text)
    for scope in negation_scopes(unit_text):
        if not set(scope) & window_negates and not (scope == ("<not>",) and window_negates):
            return False
    window_stems = content_stems(_plain(window))
    for scope in negation_scopes(window):
        nearest = scope[0]
        if nearest in unit_stems and nearest in window_stems and nearest not in unit_negates:
            return False
    return True


def negated(text: str) -> bool:
    return bool(negated_stems(text))


@lru_cache(maxsize=1 << 16)
def facts(text: str) -> frozenset[str]:
    """What a unit states that must be in the cited text as it is: numbers (and number words),
    identifiers (a digit, an underscore, an inner capital or dot, a flag), inline code, URLs."""
    found: set[str] = set()
    for match in URL.finditer(text):
        found.add("url:" + match.group(0).rstrip(".,;:!?").lower())
    for match in LINK.finditer(text):
        found.add("url:" + match.group(2).rstrip(".,;:!?").lower())
    without_urls = URL.sub(" ", LINK.sub(lambda m: m.group(1), text))
    for match in INLINE_CODE.finditer(without_urls):
        found.add("code:" + " ".join(match.group(1).split()).lower())
    for number in NUMBER.findall(without_urls):
        found.add("num:" + number.replace(",", ""))
    for word in WORDS.findall(without_urls.lower()):
        if word in NUMBER_WORDS and word != "one":  # "one" is as often a pronoun
            found.add("num:" + NUMBER_WORDS[word])
    for ident in IDENTIFIER.findall(without_urls):
        core = ident.strip(".-")
        if (
            ident.startswith("-")
            or any(c.isdigit() for c in core)
            or "_" in core
            or ("." in core and not core.endswith("."))
            or (any(c.isupper() for c in core[1:]) and any(c.islower() for c in core))
        ):
            found.add("id:" + ident.lower().rstrip("."))
    return frozenset(found)


def _squeezed_lower(text: str) -> str:
    return " ".join(text.lower().split())


def _fact_present(fact: str, window_facts: frozenset[str], window_text: str) -> bool:
    if fact in window_facts:
        return True
    kind, _, value = fact.partition(":")
    if kind in ("code", "url", "id"):
        return value in _squeezed_lower(window_text)
    return False


@dataclass
class ProseMeasures:
    quoted: bool
    why: str  # why no window can support it, when none can
    eligible: list[tuple[float, float]]  # (content-word coverage, similarity) per window holding its facts
    short: bool  # SHORT_UNIT_WORDS content words or fewer


@dataclass
class _Source:
    texts: list[str]  # the cited passages
    windows: list[str]  # each unit of a passage, and each two consecutive ones
    joined: str  # all passages, whitespace squeezed, lower case


def _source(passages: list[str]) -> _Source:
    windows: list[str] = []
    for passage in passages:
        units = [u.text for u in split_units(passage) if u.kind != "link"]
        windows += units
        windows += [f"{a} {b}" for a, b in itertools.pairwise(units)]
    return _Source(passages, list(dict.fromkeys(windows)), _squeezed_lower("\n".join(passages)))


class UnitGrounder:
    """Grounds each unit of an answer in the cited passages, with the local embedding model for
    prose. Vectors are kept by text for the life of the grounder (a grading batch reads the same
    passages again and again)."""

    def __init__(self, embedder=None, similarity: float | None = None, coverage: float | None = None):
        if embedder is None:
            from ragloop.embedding import LocalEmbedder

            embedder = LocalEmbedder()
        self.embedder = embedder
        self.similarity = UNIT_SIMILARITY_THRESHOLD if similarity is None else similarity
        self.coverage = UNIT_COVERAGE_THRESHOLD if coverage is None else coverage
        self._vectors: dict[str, list[float]] = {}

    def _embed(self, texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.embedder.embed(missing), strict=False))
        return [self._vectors[t] for t in texts]

    def ground(self, answer: str, passages: list[str]) -> list[UnitSupport]:
        """Each unit of `answer` (its body: the extractive note and quote marks removed), supported
        or not by `passages` (the cited chunks' text as the index holds it)."""
        source = _source(passages)
        units = split_units(answer_body(answer))
        prose = [u for u in units if u.kind not in ("code", "link")]
        if prose and source.windows:
            self._embed([_plain(u.text) for u in prose] + [_plain(w) for w in source.windows])
        return [self._ground_unit(unit, source) for unit in units]

    def _ground_unit(self, unit: AnswerUnit, source: _Source) -> UnitSupport:
        if unit.kind == "code":
            missing = [
                line.strip()
                for line in unit.text.split("\n")
                if line.strip() and _squeezed_lower(re.sub(r"^\s*\$\s+", "", line)) not in source.joined
            ]
            if missing:
                return UnitSupport(unit, False, f"code line not in the cited text: {missing[0][:80]!r}")
            return UnitSupport(unit, True, "every line of the code is in the cited text")
        if unit.kind == "link":
            if unit.text.lower() in source.joined:
                return UnitSupport(unit, True, "the link is in the cited text")
            return UnitSupport(unit, False, f"link not in the cited text: {unit.text[:80]!r}")
        return self._ground_prose(unit, source)

    def measure_prose(self, unit: AnswerUnit, source: _Source) -> ProseMeasures:
        """What decides a prose unit, before any threshold: quoted or not, and for each window of
        the cited text that holds all its facts (and its negation) the share of its content words
        found there and the similarity. bench/grounding.py sweeps the thresholds over these."""
        text = _plain(unit.text) if unit.kind != "table_row" else unit.text.replace("|", " ")
        wanted_facts = facts(unit.text)
        stems = content_stems(text)
        is_negated = negated(text)
        quoted = normalized(text)
        if quoted:
            # A quote is supported as it stands unless it was cut from a sentence that negates it.
            holding = [w for w in source.windows if quoted in normalized(_plain(w))]
            if holding and (is_negated or not negated(min(holding, key=len))):
                return ProseMeasures(True, "quoted from the cited text", [], len(stems) <= SHORT_UNIT_WORDS)
        vector = self._embed([_plain(unit.text)])[0]
        eligible: list[tuple[float, float]] = []
        missing_facts: set[str] = set(wanted_facts)
        negation_missing = False
        for window in source.windows:
            window_plain = _plain(window)
            missing = {f for f in wanted_facts if not _fact_present(f, facts(window), window)}
            missing_facts &= missing
            if missing:
                continue
            window_stems = content_stems(window_plain)
            if not same_polarity(text, stems, window):
                negation_missing = True
                continue
            coverage = len(stems & window_stems) / len(stems) if stems else 1.0
            eligible.append((coverage, sum(a * b for a, b in zip(vector, self._vectors[window_plain], strict=False))))
        if missing_facts:
            why = f"not in the cited text: {', '.join(sorted(m.partition(':')[2] for m in missing_facts)[:3])}"
        elif not eligible and negation_missing:
            why = "its negation is not the cited text's"
        elif not eligible:
            why = "its facts are not together in one place of the cited text"
        else:
            why = ""
        return ProseMeasures(False, why, eligible, len(stems) <= SHORT_UNIT_WORDS)

    def decide(self, unit: AnswerUnit, measures: ProseMeasures) -> UnitSupport:
        if measures.quoted:
            return UnitSupport(unit, True, measures.why, 1.0, 1.0)
        if not measures.eligible:
            return UnitSupport(unit, False, measures.why)
        for coverage, similarity in measures.eligible:
            # A unit of a few words ("Rotate it:") embeds poorly; all its words in one place suffice.
            if coverage >= self.coverage and (similarity >= self.similarity or (measures.short and coverage == 1.0)):
                return UnitSupport(unit, True, f"similarity {similarity:.2f}, words {coverage:.2f}", similarity, coverage)
        coverage, similarity = max(measures.eligible, key=lambda m: m[0] + m[1])
        if coverage < self.coverage:
            why = f"words not in the cited text ({coverage:.2f} of its content words found)"
        else:
            why = f"similarity {similarity:.2f} below {self.similarity}"
        return UnitSupport(unit, False, why, round(similarity, 3), round(coverage, 3))

    def _ground_prose(self, unit: AnswerUnit, source: _Source) -> UnitSupport:
        if not facts(unit.text) and set(WORDS.findall(unit.text.lower())) <= REPLY_WORDS:
            # "Yes." / "Not yet." alone states nothing the cited text could hold; the units after
            # it say what, and each of them is checked.
            return UnitSupport(unit, True, "a bare yes or no; the units after it are checked")
        return self.decide(unit, self.measure_prose(unit, source))


def cited_passages(run: QaRun) -> list[str]:
    """The text of the sources the answer cites (as `verify_sources` took it from the index); all
    of them when it cites none by number."""
    sources = run.get("sources") or []
    cited = sorted(n for n in cited_numbers(run.get("answer") or "") if 1 <= n <= len(sources))
    chosen = [sources[n - 1] for n in cited] if cited else sources
    return [s.get("text") or "" for s in chosen if isinstance(s, dict)]


def unverified_quote(run: QaRun) -> str | None:
    """What is wrong with the quotes an extractive run recorded (metadata "quoted_spans", see
    answer.QuotedSpan), read against its sources as the index holds them: a quote not in its
    chunk's text, or recorded against another chunk. None when all hold, or none were recorded."""
    spans = (run.get("metadata") or {}).get("quoted_spans") if isinstance(run.get("metadata"), dict) else None
    if not spans:
        return None
    sources = run.get("sources") or []
    if not isinstance(spans, list):
        return "recorded quoted_spans is not a list"
    for span in spans:
        if not isinstance(span, dict) or not isinstance(span.get("source"), int) or not isinstance(span.get("text"), str):
            return f"recorded quote {str(span)[:80]!r} is not a {{source, chunk_id, text}} record"
        number = span["source"]
        if not 1 <= number <= len(sources):
            return f"recorded quote cites source [{number}], which the run does not have"
        source = sources[number - 1]
        if span.get("chunk_id") and span["chunk_id"] != source.get("chunk_id"):
            return f"recorded quote [{number}] names chunk {span['chunk_id']!r}, the run's source [{number}] is {source.get('chunk_id')!r}"
        if _squeezed(span["text"]) not in _squeezed(source.get("text") or ""):
            return f"recorded quote [{number}] {span['text'][:80]!r} is not in the chunk text the index holds"
    return None


def unsupported_units(run: QaRun, grounder: UnitGrounder) -> tuple[list[UnitSupport], Veto | None]:
    """Every unit of the run's answer with its support, and the veto when one is unsupported: the
    whole answer is then refused for write-back (see docs/grounding.md for why not its supported part)."""
    bad_quote = unverified_quote(run)
    if bad_quote:
        return [], Veto(UNSUPPORTED_CONTENT, bad_quote)
    supports = grounder.ground(run.get("answer") or "", cited_passages(run))
    failing = [s for s in supports if not s.supported]
    if not failing:
        return supports, None
    detail = f"{len(failing)} of {len(supports)} answer units not supported by the cited sources: " + "; ".join(
        f"{s.unit.kind} {s.unit.text[:80]!r} ({s.why})" for s in failing[:4]
    )
    return supports, Veto(UNSUPPORTED_CONTENT, detail)
