"""The offline (extractive) answer: prose sentences only, joined across hard wraps, each quoted once."""

from __future__ import annotations

from ragloop.answer import NOTHING_FOUND, extractive_answer, prose_sentences
from ragloop.passages import Citation

PASSAGE = """Rotation issues a new key at once. The old key keeps working
for **24 hours** by default.

```bash
fernctl keys rotate --old-key keeps working
```

.. code-block:: bash

   fernctl keys rotate --grace 7d

- Old keys stop working after the grace period ends.
- Revoke a leaked key at once instead of rotating it.
"""


def citation(number: int, text: str, score: float = 0.5) -> Citation:
    return Citation(
        f"d{number}", "docs", "docs", "T", "", "", text, score, f"c{number}", number=number
    )


def test_prose_sentences_skip_code_and_join_wrapped_lines():
    assert prose_sentences(PASSAGE) == [
        "Rotation issues a new key at once.",
        "The old key keeps working for **24 hours** by default.",
        "Old keys stop working after the grace period ends.",
        "Revoke a leaked key at once instead of rotating it.",
    ]


def test_best_sentences_are_quoted_once_with_citations_in_source_order():
    overlapping = "The old key keeps working for **24 hours** by default. Unrelated words about billing plans here."
    answer = extractive_answer("How long does the old key keep working?", [citation(1, PASSAGE, 0.9), citation(2, overlapping, 0.8)])
    quoted = [line for line in answer.splitlines() if line.startswith("> ")]
    assert answer.startswith("No language model is configured")
    assert quoted[0] == "> The old key keeps working for **24 hours** by default. [1]"
    assert sum("24 hours" in line for line in quoted) == 1  # the overlap's copy is not quoted again
    assert not any("billing" in line or "fernctl" in line for line in quoted)


def test_nothing_retrieved_says_so():
    assert extractive_answer("Anything?", []) == NOTHING_FOUND


def test_extractive_answers_record_the_spans_they_quote_and_grading_verifies_them():
    """Issue 22: an extractive answer records which sentences it quoted, from which chunk; grading
    reads each against the chunk text the index holds (verify_sources put it in the run)."""
    from ragloop.answer import extractive_quotes, quoted_text
    from ragloop.grading.grounding import unverified_quote

    sources = [citation(1, PASSAGE, 0.9)]
    quotes = extractive_quotes("How long does the old key keep working?", sources)
    assert quotes and all(q["source"] == 1 and q["chunk_id"] == "c1" for q in quotes)
    assert quoted_text(quotes) == extractive_answer("How long does the old key keep working?", sources)
    run = {"answer": quoted_text(quotes), "metadata": {"quoted_spans": quotes},
           "sources": [{"chunk_id": "c1", "text": PASSAGE}]}
    assert unverified_quote(run) is None
    # The index's chunk says otherwise than the recorded quote: refused, with the quote named.
    changed = {**run, "sources": [{"chunk_id": "c1", "text": PASSAGE.replace("24 hours", "90 days")}]}
    assert "is not in the chunk text the index holds" in unverified_quote(changed)
    moved = {**run, "metadata": {"quoted_spans": [{**quotes[0], "chunk_id": "c9"}]}}
    assert "names chunk 'c9'" in unverified_quote(moved)
    assert "does not have" in unverified_quote({**run, "metadata": {"quoted_spans": [{**quotes[0], "source": 4}]}})
