"""Credentials in sources (issue 22): the secret scanner reads every new or changed chunk at
ingest; the report counts and names the documents (doc id, source, rule; never the secret);
`quarantine_credentials: true` keeps those chunks out of public search until the document is
fixed. Real Weaviate, the local model, the real gitleaks binary, a docs folder of our own."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.integration

TOKEN = "ghp_Qx7fK2mLp9Rt4Vw8Zb3Nc6Hj1Gd5Sa0Ye2Ui"
RUNBOOK = f"# Deploy runbook\n\nThe deploy bot pushes tags with the token {TOKEN} from the CI settings.\n"
CLEAN = "# Rotation\n\nRotate the signing key every 90 days; the old key keeps working for 24 hours.\n"


def setup_source(folder, quarantine: bool | None):
    docs = folder / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "runbook.md").write_text(RUNBOOK)
    (docs / "rotation.md").write_text(CLEAN)
    source: dict[str, object] = {"id": "ops-docs", "type": "docs", "path": str(docs), "url_template": "https://docs.example/{path}"}
    if quarantine is not None:
        source["quarantine_credentials"] = quarantine
    config = folder / "sources.yaml"
    config.write_text(yaml.safe_dump({"collection": f"Creds{'Q' if quarantine else 'R'}", "embedder": "local",
                                      "staging": f"file://{folder / 'staging'}", "sources": [source]}))
    return config, docs


def hits(collection: str, question: str, audience: str) -> list:
    from ragloop.embedding import make_embedder
    from ragloop.index import connect, search

    with connect() as client:
        return search(client, collection, make_embedder("local"), question, limit=10, audience=audience)


def test_a_credential_in_a_source_is_reported_and_quarantined_until_fixed(tmp_path, weaviate_server, drill):
    from ragloop.ingest import format_report, ingest

    config, docs = setup_source(tmp_path, quarantine=True)
    report = ingest("creds-q", str(config), source_type="docs")
    found = report["sources"]["ops-docs"]["credentials"]
    assert found["documents"] == 1 and found["quarantined"] == 1
    named = found["named"][0]
    assert named["doc_id"].endswith("runbook.md") and named["source_id"] == "ops-docs"
    assert any("github-pat" in rule for rule in named["rules"])
    assert TOKEN not in json.dumps(report) and TOKEN not in format_report(report)  # named, never quoted
    assert "credentials found in 1 document(s), 1 kept out of public search" in format_report(report)

    public = [h.doc_id for h in hits("CredsQ", "Which token does the deploy bot push tags with?", "public")]
    internal = [h.doc_id for h in hits("CredsQ", "Which token does the deploy bot push tags with?", "internal")]
    seen = "public search returns it" if any(d.endswith("runbook.md") for d in public) else "kept out of public search"
    drill("a live token in a public docs page (quarantine_credentials: true)", "kept out of public search", seen)
    assert seen == "kept out of public search"
    assert any(d.endswith("runbook.md") for d in internal) and any(d.endswith("rotation.md") for d in public)

    # Fixed at the source: the document changes, is rewritten public, and nothing is reported.
    (docs / "runbook.md").write_text(RUNBOOK.replace(TOKEN, "the token stored in the CI secret DEPLOY_TOKEN"))
    report = ingest("creds-q", str(config), source_type="docs")
    assert "credentials" not in report["sources"]["ops-docs"]
    public = [h.doc_id for h in hits("CredsQ", "Which token does the deploy bot push tags with?", "public")]
    assert any(d.endswith("runbook.md") for d in public)


def test_without_quarantine_the_document_is_still_named(tmp_path, weaviate_server, drill):
    from ragloop.ingest import ingest

    config, _ = setup_source(tmp_path, quarantine=None)
    report = ingest("creds-r", str(config), source_type="docs")
    found = report["sources"]["ops-docs"].get("credentials") or {"documents": 0, "quarantined": 0}
    drill("a live token in a docs page (no quarantine)", "named in the ingest report",
          "named in the ingest report" if found["documents"] == 1 else "not reported")
    assert found["documents"] == 1 and found["quarantined"] == 0


def test_the_option_is_checked(tmp_path):
    from ragloop.config import ConfigError, load_config

    config, _ = setup_source(tmp_path, quarantine=True)
    config.write_text(config.read_text().replace("quarantine_credentials: true", "quarantine_credentials: 'yes'"))
    with pytest.raises(ConfigError, match="quarantine_credentials must be true or false, not 'yes'"):
        load_config(str(config))
