"""The feedback-lift bench's questions and days, from public Stack Overflow threads nobody here
wrote (bench/public_questions.py: 921 `airflow` threads as astronomer/ask-astro ships them).

Each thread gives one labelled document and two questions by the same real asker:
- the document: the thread's answers (title and question left out), as bench/retrieval.py
  indexes them; it is the one document labelled as answering the thread's questions;
- the first question: the thread's title, the short form a user types first;
- the repeat: the question's own body (its prose, code left out, cut at a sentence end near
  REPEAT_WORDS words): the same need in other words, which arrives on a later day.

Days: a split's sampled threads are cut into `days` cohorts. Day 1 asks the titles of cohort 1;
day d asks the titles of cohort d and the repeats of cohort d-1; the last day asks the repeats of
the last cohort. So every day after the first has questions the loop has seen in other words
(where feedback can lift) and new ones (where it can only harm).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ragloop.errors import RagloopError

REPEAT_WORDS = 60
MIN_REPEAT_WORDS = 8
CODE_LINE = re.compile(r"^(?: {4}|\t)")
SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


@dataclass(frozen=True)
class Question:
    question_id: str  # "<thread id>/first" or "<thread id>/repeat"
    thread_id: int
    kind: str  # first | repeat
    text: str
    expected_doc_id: str  # the thread's answers document


@dataclass(frozen=True)
class Day:
    number: int
    questions: tuple[Question, ...]


def doc_id_of(thread_id: int) -> str:
    """The doc id the docs source gives a thread's answers file (source `so`, file so-<id>.md)."""
    return f"so:so-{thread_id}.md"


def write_corpus(threads, folder: Path) -> None:
    """Each thread's answers as one markdown file (as bench/retrieval.py writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for thread in threads:
        (folder / f"so-{thread.thread_id}.md").write_text(f"# Answers\n\n{thread.answers}\n", encoding="utf-8")


def repeat_text(body: str, words: int = REPEAT_WORDS) -> str:
    """The question body as a user would ask it again: prose lines only (code blocks, which the
    export indents, left out), whitespace folded, cut at the first sentence end after `words`
    words (or at `words` words when no sentence ends)."""
    prose = " ".join(line for line in body.splitlines() if not CODE_LINE.match(line) and line.strip())
    prose = " ".join(prose.replace("**", "").split())
    kept: list[str] = []
    for sentence in SENTENCE_END.split(prose):
        kept.append(sentence)
        if sum(len(s.split()) for s in kept) >= words:
            break
    text = " ".join(kept)
    tokens = text.split()
    return " ".join(tokens[: words * 2]) if len(tokens) > words * 2 else text


def _order(thread_id: int) -> str:
    """A fixed pseudo-random order: no thread is favoured by its id or position in the file."""
    return hashlib.sha256(f"feedback-lift/{thread_id}".encode()).hexdigest()


def sample_threads(threads, split: str, count: int) -> list:
    """`count` threads of `split` whose body gives a repeat of at least MIN_REPEAT_WORDS words."""
    usable = [t for t in threads if t.split == split and len(repeat_text(t.question).split()) >= MIN_REPEAT_WORDS]
    return sorted(usable, key=lambda t: _order(t.thread_id))[:count]


def schedule(threads, days: int) -> list[Day]:
    """The days for `threads` (already sampled): see the module's docstring."""
    if days < 1:
        raise RagloopError(f"days must be at least 1, not {days}")
    cohorts = [threads[i::days] for i in range(days)]

    def first(thread) -> Question:
        return Question(f"{thread.thread_id}/first", thread.thread_id, "first", " ".join(thread.title.split()),
                        doc_id_of(thread.thread_id))

    def repeat(thread) -> Question:
        return Question(f"{thread.thread_id}/repeat", thread.thread_id, "repeat", repeat_text(thread.question),
                        doc_id_of(thread.thread_id))

    out = []
    for number in range(1, days + 2):
        asked = [first(t) for t in cohorts[number - 1]] if number <= days else []
        asked += [repeat(t) for t in cohorts[number - 2]] if number >= 2 else []
        out.append(Day(number, tuple(asked)))
    return out
