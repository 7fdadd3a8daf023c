"""Mounts ragloop on Airflow's API server: the runs and feedback API under /ragloop, and the
operator's page under /ragloop-ui, listed in the UI's navigation as "ragloop".

The apps live in `ragloop.airflow.runs_api` and `ragloop.airflow.operator.app` (authentication, validation and
errors are described there: Airflow does not authenticate plugin apps, both do it themselves).
"""

from airflow.plugins_manager import AirflowPlugin

from ragloop.airflow.operator.app import URL_PREFIX, create_ui_app, external_view
from ragloop.airflow.runs_api import create_app


class RagloopPlugin(AirflowPlugin):
    name = "ragloop"
    fastapi_apps = [  # noqa: RUF012 - the plugin contract: Airflow reads these class attributes
        {"app": create_app(), "url_prefix": "/ragloop", "name": "ragloop runs API"},
        {"app": create_ui_app(), "url_prefix": URL_PREFIX, "name": "ragloop page"},
    ]
    external_views = [external_view()]  # noqa: RUF012 - as above
