"""One meaning per connection type: the `weaviate` type belongs to the official Weaviate provider,
and ragloop registers no type of its own (docs/connections.md). Checked the way Airflow itself
reads it, each in a fresh interpreter (providers load once per process): the form the UI builds
for the type (the API's `hook_meta`, served from the providers manager) and `airflow connections
test`, against a real Weaviate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, weaviate_conn_json
from ragloop.local.weaviate_local import free_port

pytestmark = pytest.mark.integration

OFFICIAL = "airflow.providers.weaviate.hooks.weaviate.WeaviateHook"

FORM = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from airflow.providers_manager import ProvidersManager
meta = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "weaviate"]
hook = ProvidersManager().hooks["weaviate"]
print("RESULT " + json.dumps({"forms": [m.hook_name for m in meta], "hook": hook.hook_class_name,
                              "package": hook.package_name, "extra_fields": sorted(meta[0].extra_fields or {})}))
"""


def test_the_ui_form_for_weaviate_is_the_official_hooks(airflow_db):
    done = subprocess.run([sys.executable, "-c", FORM], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["hook"] == OFFICIAL and result["package"] == "apache-airflow-providers-weaviate"
    assert result["forms"] == ["Weaviate"]  # one form, the official one (not "Weaviate (ragloop)")
    assert "already registered" not in done.stdout + done.stderr  # no provider claims the type twice


def connections_test(conn_json: str) -> str:
    airflow = Path(sys.executable).with_name("airflow")
    env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW_CONN_KB_UNDER_TEST": conn_json}
    done = subprocess.run([str(airflow), "connections", "test", "kb_under_test"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO)
    return done.stdout + done.stderr


def test_airflow_connections_test_uses_the_official_hook(weaviate_server, airflow_db):
    assert "Connection success!" in connections_test(weaviate_conn_json(weaviate_server))
    # Which hook answered shows on a failure: the official hook returns the client's message as it
    # is; ragloop's hook prefixes the exception's type ("WeaviateStartUpError: Could not connect...").
    output = connections_test(json.dumps({"conn_type": "weaviate", "host": "127.0.0.1", "port": free_port(),
                                          "extra": {"grpc_host": "127.0.0.1", "grpc_port": free_port()}}))
    assert re.search(r"Connection failed!\nConnection to Weaviate failed\. Details: .*Connection refused", output), output[-3000:]
