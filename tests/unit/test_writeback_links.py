"""A written-back answer is markdown that other surfaces render: its source list links only to URLs
that may be links (http, https, ragloop); a recorded `javascript:` URL never reaches it."""

from ragloop.grading.writeback import qa_document


def run_citing(url: str) -> dict:
    return {
        "run_id": "r1",
        "question": "How long does an old key keep working?",
        "answer": "Old keys keep working for 24 hours after rotation [1].",
        "created_at": "2026-12-01T00:00:00+00:00",
        "model": "extractive",
        "sources": [{"doc_id": "docs:keys.md", "title": "Keys", "url": url, "visibility": "public"}],
    }


def test_a_javascript_url_is_never_a_link_target():
    content = qa_document(run_citing("javascript:alert(document.cookie)"), {}).content
    assert "javascript:" not in content
    assert "(<docs:keys.md>)" in content


def test_an_https_url_stays_the_link_target():
    content = qa_document(run_citing("https://example.org/keys"), {}).content
    assert "(<https://example.org/keys>)" in content
