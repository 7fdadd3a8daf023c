"""The configuration reference and the runs-API reference are generated from the code
(tools/reference_pages.py, run by `make docs`): every key the loader accepts, every key of every
built-in source type, every endpoint and every field of the API's schema is on its page, and the
committed pages are what the code gives now."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import reference_pages  # noqa: E402 - tools/ is not a package

from ragloop import config as config_module  # noqa: E402
from ragloop.feedback import settings as feedback_settings  # noqa: E402
from ragloop.sources.registry import SOURCE_TYPES, source_class  # noqa: E402


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    return reference_pages.pages()


def table_keys(page: str, heading: str) -> list[str]:
    """The first column of the table under `heading` (up to the next heading)."""
    section = page.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


def test_the_schema_documents_exactly_the_keys_the_loader_accepts():
    documented = {entry.key for entry in config_module.CONFIG_REFERENCE}
    accepted = (
        set(config_module.TOP_LEVEL_KEYS)
        | {f"chunking.{k}" for k in config_module.CHUNKING_KEYS}
        | {f"replication.{k}" for k in config_module.REPLICATION_KEYS}
        | {f"llm.{k}" for k in config_module.LLM_KEYS}
        | {f"llm.prices.{k}" for k in config_module.PRICE_KEYS}
        | {f"feedback_ranking.{k}" for k in feedback_settings.KEYS}
        | {f"review.{k}" for k in config_module.REVIEW_KEYS}
    )
    assert documented == accepted, f"undocumented: {sorted(accepted - documented)}; not accepted: {sorted(documented - accepted)}"


def test_every_config_key_is_on_the_page(generated):
    page = generated[reference_pages.CONFIG_PAGE]
    assert table_keys(page, "## Top-level keys") == [entry.key for entry in config_module.CONFIG_REFERENCE]
    assert table_keys(page, "## Keys of every source") == ["id", "type", "visibility", config_module.QUARANTINE_KEY]
    for source_type in SOURCE_TYPES:
        assert table_keys(page, f"## Source type `{source_type}`") == list(source_class(source_type).config_keys), source_type
    # Defaults come from the Config dataclass, not from the text.
    assert "| `index_batch_chunks` | a whole number ≥ 1 | `4000` |" in page
    assert f"| `written_back_share` | a number from 0 to 1 | `{config_module.Config(path=Path('x')).written_back_share}` |" in page


def test_a_source_key_without_a_meaning_stops_the_generation(monkeypatch):
    cls = source_class("slack")
    monkeypatch.setattr(cls, "config_keys", {**cls.config_keys, "thread_limit": (int, False)})
    with pytest.raises(SystemExit, match="source type 'slack' has key 'thread_limit' with no meaning"):
        reference_pages.configuration_page()


def test_every_endpoint_and_schema_field_is_on_the_runs_api_page(generated):
    schema = reference_pages.openapi_schema()
    page = generated[reference_pages.RUNS_API_PAGE]
    for route, methods in schema["paths"].items():
        for method in methods:
            assert f"### `{method.upper()} {route}`" in page
    for name, component in schema["components"]["schemas"].items():
        assert table_keys(page, f"### {name}") == list(component.get("properties", {})), name
    assert {"/runs", "/runs/{run_id}/feedback", "/runs/{run_id}", "/health"} <= set(schema["paths"])


def test_the_committed_pages_are_what_the_code_gives(generated):
    stale = [str(path.relative_to(REPO)) for path, text in generated.items() if not path.exists() or path.read_text() != text]
    assert not stale, f"{stale} differ from the code: run `make docs` (or python tools/reference_pages.py) and commit"
