"""Provider metadata, found by Airflow through the `apache_airflow_provider` entry point: the hook
ragloop connects to Weaviate with, and the connection type it reads. The other connections
(`openai_default`, `slack_api_default`, `github_default`, `ragloop_runs_default`) are read with
the official providers' meanings and have their types from those providers."""

from __future__ import annotations

from ragloop import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-ragloop",
        "name": "ragloop",
        "description": "Keeps a Weaviate knowledge base fresh from docs, Slack and GitHub issues, "
        "and writes graded answers back into it.",
        "versions": [__version__],
        "integrations": [{"integration-name": "ragloop", "tags": ["software"]}],
        "hooks": [{"integration-name": "ragloop", "python-modules": ["ragloop.hooks.weaviate"]}],
        # The `weaviate` type, read as the official Weaviate provider reads it: whichever of the two
        # hooks Airflow shows for it, a connection means the same thing.
        "connection-types": [
            {"connection-type": "weaviate", "hook-class-name": "ragloop.hooks.weaviate.RagloopWeaviateHook"},
        ],
    }
