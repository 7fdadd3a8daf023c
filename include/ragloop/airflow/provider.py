"""Provider metadata, found by Airflow through the `apache_airflow_provider` entry point: ragloop's
public Airflow surface (the task groups of `ragloop.airflow.task_groups`), and its Weaviate hook.

One meaning per connection type: ragloop registers no connection type. The `weaviate` type
belongs to the official Weaviate provider (a dependency), whose hook Airflow's connection form and
`airflow connections test` use; `RagloopWeaviateHook` subclasses that hook and reads a `weaviate`
connection exactly as it does (see `ragloop.airflow.hooks.weaviate` and docs/connections.md). Registering
the type a second time, as ragloop once did, made the form's hook depend on the providers' load
order. The other connections (`openai_default`, `slack_api_default`, `github_default`,
`ragloop_runs_default`) are likewise read with the official providers' meanings and types."""

from __future__ import annotations

from ragloop import __version__

INTEGRATION = "ragloop"


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-ragloop",
        "name": "ragloop",
        "description": "Keeps a Weaviate knowledge base fresh from docs, Slack and GitHub issues, "
        "and writes graded answers back into it.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["software"]}],
        # Task-group factories: ingest_sources, grade_runs, write_back_answers, feedback_loop.
        "operators": [{"integration-name": INTEGRATION, "python-modules": ["ragloop.airflow.task_groups"]}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["ragloop.airflow.hooks.weaviate"]}],
        "connection-types": [],
        # The OpenLineage datasets of the URIs ragloop reports as hook-level lineage (ragloop.airflow.lineage).
        "asset-uris": [
            {
                "schemes": ["weaviate", "git", "slack", "github", "ragloop"],
                "handler": None,
                "to_openlineage_converter": "ragloop.airflow.lineage.asset_to_openlineage",
            }
        ],
    }
