"""The operator's page counts the documents a source's last ingest found holding a credential, and
names them only to internal viewers; the secret itself is never on the page."""

from ragloop.airflow.operator.data import credential_findings
from ragloop.airflow.operator.render import render_html

FOUND = {
    "documents": 1,
    "quarantined": 1,
    "named": [{"doc_id": "docs:runbooks/rotate.md", "source_id": "docs", "rules": ["github-pat (gitleaks)"], "chunks": 1,
               "quarantined": True}],
}


def page_for(audience: str) -> str:
    source: dict[str, object] = {"source_id": "docs", "type": "docs", "dag_id": "ragloop_ingest_docs", "freshness": "fresh", "freshness_reason": "",
              "last_success": None, "watermarks": {}, "listing_time": None, "schedule": None, "paused": False,
              "failed_documents": [], "credentials": credential_findings(FOUND, audience)}
    data = {"collection": "C", "generated_at": "2026-12-04T00:00:00", "audience": audience,
            "knowledge_base": {"sources": [source]}, "ingest_history": {"runs": []}, "gaps": {}, "feedback": {}}
    return render_html(data, standalone=True)


def test_internal_viewers_see_which_documents_hold_a_credential():
    html = page_for("internal")
    assert "1 document(s)" in html and "1 kept out of public search" in html
    assert "docs:runbooks/rotate.md" in html and "github-pat (gitleaks)" in html


def test_public_viewers_see_the_count_but_not_the_documents():
    html = page_for("public")
    assert "1 document(s)" in html
    assert "docs:runbooks/rotate.md" not in html


def test_no_findings_show_none():
    assert credential_findings(None, "internal") is None
