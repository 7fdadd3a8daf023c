"""Issue 22: only http, https and ragloop URLs become links (ragloop.links.safe_link), and the
page's template renders every recorded URL through it: a `javascript:` or `data:` URL from a
recorded source is shown as text, never as a link."""

from __future__ import annotations

import pytest

from ragloop.links import safe_link
from ragloop.airflow.operator.render import render_html

LINKS = ["https://docs.example/a.md", "http://127.0.0.1:8080/x?y=1#z", "ragloop://runs/abc", "HTTPS://DOCS.EXAMPLE/A"]
NOT_LINKS = [
    "javascript:alert(document.domain)", "JavaScript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "java\nscript:alert(1)", "\x01javascript:alert(1)", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)", "file:///etc/passwd", "//evil.example/x", "/relative/path", "https:evil", "http://[::1",
    "", None, 42,
]


@pytest.mark.parametrize("url", LINKS)
def test_http_https_and_ragloop_urls_are_links(url):
    assert safe_link(url) == url


@pytest.mark.parametrize("url", NOT_LINKS)
def test_anything_else_is_not_a_link(url):
    assert safe_link(url) is None


def page_with_sources(sources: list[dict]) -> str:
    data = {"collection": "C", "generated_at": "2026-12-04T00:00:00", "audience": "public",
            "knowledge_base": {"sources": []}, "ingest_history": {"runs": []}, "gaps": {},
            "feedback": {"written_back": [{"run_id": "r1", "question": "Q?", "answer": "A [1].", "sources": sources,
                                           "chunks": 1, "graded_by": {}, "votes": {"up": 0, "down": 0}}]}}
    return render_html(data, standalone=True)


def test_the_page_renders_a_javascript_or_data_url_as_text(drill):
    html = page_with_sources([
        {"doc_id": "d:evil", "title": "Evil", "url": "javascript:alert(document.domain)"},
        {"doc_id": "d:data", "title": "Data", "url": "data:text/html,<script>alert(1)</script>"},
        {"doc_id": "d:good", "title": "Good", "url": "https://docs.example/good.md"},
    ])
    linked = [u for u in ("javascript:", "data:text/html") if f'href="{u}' in html]
    drill("page: a recorded source URL javascript:/data: rendered as a link", "0 links", f"{len(linked)} links")
    assert not linked
    assert 'href="https://docs.example/good.md"' in html
    assert "javascript:alert(document.domain)" in html  # shown, as text
