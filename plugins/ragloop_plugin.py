"""Mounts ragloop's runs and feedback API on Airflow's API server under /ragloop.

The app lives in `ragloop.runs_api` (authentication, validation, errors are described there).
"""

from airflow.plugins_manager import AirflowPlugin

from ragloop.runs_api import create_app


class RagloopPlugin(AirflowPlugin):
    name = "ragloop"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/ragloop", "name": "ragloop runs API"}]
