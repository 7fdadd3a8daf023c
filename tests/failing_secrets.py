"""A secrets backend that fails for the connection ids it is given, the way a secrets manager that
is down fails: configured with AIRFLOW__SECRETS__BACKEND=failing_secrets.UnreachableSecretsBackend
and AIRFLOW__SECRETS__BACKEND_KWARGS='{"failing": ["ragloop_runs_default"]}' (this folder on
PYTHONPATH). Every other connection id it does not hold, so lookups go on to the next backend."""

from __future__ import annotations

from airflow.secrets.base_secrets import BaseSecretsBackend


class UnreachableSecretsBackend(BaseSecretsBackend):
    def __init__(self, failing: list[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.failing = set(failing or [])

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        if conn_id in self.failing:
            raise ConnectionRefusedError(f"secrets manager at 127.0.0.1:9 refused the lookup of {conn_id}")
        return None

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        return None

    def get_config(self, key: str) -> str | None:
        return None
