"""The datasets ragloop names for OpenLineage: one per source's data, the collection by its
endpoint, and the OpenLineage dataset each of ragloop's URI schemes becomes."""

from __future__ import annotations

import socket

from ragloop.config import Config
from ragloop.airflow.lineage import SCHEMES, asset_to_openlineage, source_uris


def config_of(tmp_path, *sources) -> Config:
    return Config(path=tmp_path / "sources.yaml", sources=list(sources))


def test_each_kind_of_source_names_its_data(tmp_path):
    config = config_of(
        tmp_path,
        {"id": "folder", "type": "docs", "path": "docs"},
        {"id": "repo", "type": "docs", "repo": "https://github.com/acme/handbook.git"},
        {"id": "chat", "type": "slack", "connection": "slack_api_default", "channels": ["C01", "C02"]},
        {"id": "chat-export", "type": "slack", "export": "exports/slack"},
        {"id": "issues", "type": "github_issues", "repo": "acme/api", "connection": "github_default"},
    )
    host = socket.gethostname()
    assert source_uris(config, "folder", tmp_path) == [f"file://{host}{tmp_path / 'docs'}"]
    assert source_uris(config, "repo", tmp_path) == ["git://github.com/acme/handbook.git"]
    assert source_uris(config, "chat", tmp_path) == ["slack://slack_api_default/C01", "slack://slack_api_default/C02"]
    assert source_uris(config, "chat-export", tmp_path) == [f"file://{host}{tmp_path / 'exports/slack'}"]
    assert source_uris(config, "issues", tmp_path) == ["github://github.com/acme/api"]


def test_ragloop_uris_become_openlineage_datasets():
    class Asset:
        uri = "weaviate://10.0.0.5:8080/RagloopChunks"

    dataset = asset_to_openlineage(Asset(), None)
    assert (dataset.namespace, dataset.name) == ("weaviate://10.0.0.5:8080", "RagloopChunks")
    assert {"weaviate", "slack", "github", "git"} <= set(SCHEMES)


def test_the_provider_registers_the_converter_for_every_scheme():
    from ragloop.airflow.provider import get_provider_info

    [uris] = get_provider_info()["asset-uris"]
    assert uris["schemes"] == SCHEMES and uris["to_openlineage_converter"] == "ragloop.airflow.lineage.asset_to_openlineage"
