"""Provider metadata, found by Airflow through the `apache_airflow_provider` entry point."""

from __future__ import annotations

from ragloop import __version__

# The connections ragloop reads; every credential and endpoint lives in one of them.
CONNECTIONS = {
    "weaviate_conn_id": ("weaviate_default", "Weaviate that holds the knowledge base (type weaviate)."),
    "openai_conn_id": ("openai_default", "OpenAI-compatible API for embeddings, answers and the judge (type openai)."),
    "slack_conn_id": ("slack_api_default", "Slack Web API token for the Slack source (type slack)."),
    "github_conn_id": ("github_default", "GitHub token for the GitHub issues source (type github)."),
    "runs_conn_id": ("ragloop_runs_default", "SQL database that records Q&A runs, votes and grades."),
}


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-ragloop",
        "name": "ragloop",
        "description": "Keeps a Weaviate knowledge base fresh from docs, Slack and GitHub issues, "
        "and writes graded answers back into it.",
        "versions": [__version__],
        "config": {
            "ragloop": {
                "description": "Connections ragloop uses. Credentials live only in these connections.",
                "options": {
                    option: {
                        "description": description,
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": default,
                    }
                    for option, (default, description) in CONNECTIONS.items()
                },
            }
        },
    }
