"""`ragloop doctor`: what a deployment's ragloop would use, found and reached, with the exact fix
for each thing that is not right.

Run it where the tasks run (a worker, the Astro image, the local project): every connection
ragloop uses is resolved through the same secrets backends the tasks use, and each store is
reached for real (Weaviate's meta endpoint, the runs database, a probe file written to and read
back from the staging store, the OpenAI, Slack and GitHub APIs when configured). Nothing is
changed except the probe file, which is removed again.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any
from collections.abc import Callable

OK, FAIL, WARN = "ok", "fail", "warn"


@dataclass
class Check:
    name: str  # what is checked, e.g. "weaviate"
    connection: str | None  # the Airflow connection it uses, if any
    status: str  # ok | warn | fail
    found: str  # what was found, in one line
    fix: str = ""  # what to do when status is not ok

    def to_json(self) -> dict:
        return asdict(self)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _connection_fix(conn_id: str, conn_type: str) -> str:
    return (
        f"create the `{conn_type}` connection {conn_id!r}: in airflow_settings.yaml (then `ragloop airflow setup`), "
        f"as AIRFLOW_CONN_{conn_id.upper()}, in your secrets backend, or in the Airflow UI"
    )


def _resolve(conn_id: str, conn_type: str, name: str) -> tuple[Any, Check | None]:
    """The connection, or the failed check saying why it could not be had."""
    from ragloop.airflow.connections import ConnectionNotFound, ConnectionProblem, get_connection

    try:
        return get_connection(conn_id), None
    except ConnectionNotFound:
        return None, Check(name, conn_id, FAIL, f"connection {conn_id!r} is not defined", _connection_fix(conn_id, conn_type))
    except ConnectionProblem as err:
        return None, Check(
            name,
            conn_id,
            FAIL,
            str(err),
            "the connection exists but cannot be read: fix the secrets backend or the metadata DB it names",
        )


def check_config(config_path: str | None) -> tuple[Any, Check]:
    from ragloop.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as err:
        return None, Check("config", None, FAIL, str(err), "correct the file and line named above")
    kinds = ", ".join(f"{s['id']} ({s['type']})" for s in config.sources) or "no sources"
    return config, Check("config", None, OK, f"{config.path}: collection {config.collection}, {kinds}")


def check_connections_source() -> Check:
    from ragloop.airflow.connections import connection_source

    try:
        return Check("secrets backends", None, OK, connection_source())
    except Exception as err:  # noqa: BLE001 - any backend failure is reported as the check's finding
        return Check(
            "secrets backends",
            None,
            FAIL,
            _first_line(err),
            "fix [secrets] backend / backend_kwargs in the Airflow configuration",
        )


def check_weaviate(config) -> Check:
    from ragloop.embedding import make_embedder
    from ragloop.index.endpoint import WEAVIATE_CONN_ID
    from ragloop.index import WeaviateIndexError, connect, endpoint_from_connection, recorded_embedder

    conn, failed = _resolve(WEAVIATE_CONN_ID, "weaviate", "weaviate")
    if failed:
        return failed
    try:
        endpoint = endpoint_from_connection(WEAVIATE_CONN_ID)
        with connect(WEAVIATE_CONN_ID) as client:
            version = client.get_meta().get("version")
            recorded = recorded_embedder(client, config.collection) if config else None
    except WeaviateIndexError as err:
        fix = (
            "start it with `ragloop weaviate start`"
            if conn.host in ("127.0.0.1", "localhost")
            else "check the connection's host, port, extra.grpc_host/grpc_port, the *_secure flags and the API key"
        )
        return Check("weaviate", WEAVIATE_CONN_ID, FAIL, str(err).splitlines()[0], fix)
    found = f"Weaviate {version} at {endpoint.url} (gRPC {endpoint.grpc_host}:{endpoint.grpc_port})"
    if not config:
        return Check("weaviate", WEAVIATE_CONN_ID, OK, found)
    if recorded is None:
        return Check(
            "weaviate",
            WEAVIATE_CONN_ID,
            OK,
            f"{found}; collection {config.collection} not created yet (the first ingest creates it)",
        )
    embedder = make_embedder(config.embedder)
    if recorded.get("embedder") != embedder.name:
        return Check(
            "weaviate",
            WEAVIATE_CONN_ID,
            FAIL,
            f"{found}; collection {config.collection} was built with {recorded.get('embedder')}, the configuration embeds with {embedder.name}",
            f"set a new `collection:` in {config.path} and ingest again, or set the embedder back to {recorded.get('embedder')}",
        )
    return Check("weaviate", WEAVIATE_CONN_ID, OK, f"{found}; collection {config.collection} built with {embedder.name}")


def check_runs_store() -> Check:
    from ragloop.runs import RUNS_CONN_ID, RunStore, RunStoreError, describe_database, runs_database

    try:
        url, from_connection = runs_database()
    except RunStoreError as err:
        return Check(
            "runs database",
            RUNS_CONN_ID,
            FAIL,
            str(err),
            "fix the secrets backend or the metadata DB named above; ragloop does not fall back to a local file "
            "when the connection exists",
        )
    described = describe_database(url, from_connection)
    try:
        with RunStore(url, connect_timeout=5) as store:
            version = store.current_schema_version()
            runs = store.count_runs() if version else 0
    except RunStoreError as err:
        return Check(
            "runs database",
            RUNS_CONN_ID,
            FAIL,
            str(err),
            f"check that the database named by {RUNS_CONN_ID!r} is running and accepts the connection's login",
        )
    schema = f"schema version {version}, {runs} runs" if version else "empty (created on first use)"
    status, fix = OK, ""
    if not from_connection and _distributed_executor():
        status, fix = (
            WARN,
            (f"workers share no disk: create {RUNS_CONN_ID!r} (postgres) so every worker and the API server use one run store"),
        )
    return Check("runs database", RUNS_CONN_ID, status, f"{described}: {schema}", fix)


def _distributed_executor() -> bool:
    executor = os.environ.get("AIRFLOW__CORE__EXECUTOR", "")
    if not executor:
        try:
            from airflow.configuration import conf

            executor = conf.get("core", "executor", fallback="")
        except Exception:  # noqa: BLE001 - no Airflow configuration: a plain local run
            executor = ""
    return any(name in executor for name in ("Celery", "Kubernetes", "Edge"))


def check_staging(config) -> Check:
    from ragloop.staging import staging_root

    conn_id = config.staging_conn_id
    if conn_id:
        _, failed = _resolve(conn_id, "aws", "staging store")
        if failed:
            return failed
    try:
        root = staging_root(config.staging, conn_id)
        probe = root / ".ragloop-doctor" / f"{uuid.uuid4().hex}.txt"
        probe.parent.mkdir(parents=True, exist_ok=True)
        with probe.open("w") as handle:
            handle.write("ragloop doctor probe")
        with probe.open("r") as handle:
            read_back = handle.read()
        probe.unlink()
    except Exception as err:  # noqa: BLE001 - any store error: say which store and what it said
        return Check(
            "staging store",
            conn_id,
            FAIL,
            f"{config.staging or 'the default local folder'}: {_first_line(err)}",
            "check the bucket exists and the connection may write, read and delete under the prefix",
        )
    if read_back != "ragloop doctor probe":
        return Check("staging store", conn_id, FAIL, f"{root}: a probe file read back different bytes", "check the store")
    status, fix = OK, ""
    if str(root).startswith("file://") and _distributed_executor():
        status, fix = (
            WARN,
            (
                "staging is a local folder but the executor runs tasks on several workers that share no disk: "
                "set `staging: s3://bucket/prefix` and `staging_conn_id:` in sources.yaml"
            ),
        )
    return Check("staging store", conn_id, status, f"{root}: wrote, read back and removed a probe file", fix)


def check_openai(conn_id: str, why: str) -> Check:
    from ragloop.airflow.connections import openai_client

    _, failed = _resolve(conn_id, "openai", "openai")
    if failed:
        return failed
    try:
        client = openai_client(conn_id, max_retries=0, timeout=10)
        models = [model.id for model in client.models.list()]
    except Exception as err:  # noqa: BLE001 - the API's own error, named
        return Check(
            "openai", conn_id, FAIL, f"{why}: {_first_line(err)}", "check the connection's password (API key) and host (base URL)"
        )
    return Check("openai", conn_id, OK, f"{why}: {len(models)} models listed at {client.base_url}")


def _check_live_source(source: dict, service: str, probe: Callable[[str], str], fix: str) -> Check:
    """A live Slack or GitHub source's connection, resolved, then `probe(conn_id)` against the API."""
    conn_id = source["connection"]
    name = f"{service} ({source['id']})"
    _, failed = _resolve(conn_id, service, name)
    if failed:
        return failed
    try:
        found = probe(conn_id)
    except Exception as err:  # noqa: BLE001 - the API's own error, named
        return Check(name, conn_id, FAIL, _first_line(err), fix)
    return Check(name, conn_id, OK, found)


def check_slack(source: dict) -> Check:
    from ragloop.sources.slack.live import slack_client

    def probe(conn_id: str) -> str:
        identity = slack_client(conn_id).auth_test()
        return f"token of {identity.get('user')} in workspace {identity.get('team')}"

    return _check_live_source(source, "slack", probe, "check the connection's bot token (password) and its scopes")


def check_github(source: dict) -> Check:
    from ragloop.sources.github import github_client

    def probe(conn_id: str) -> str:
        repo = github_client(conn_id, source["id"]).get_repo(source["repo"])
        return f"{repo.full_name} readable with the connection's token"

    return _check_live_source(
        source,
        "github",
        probe,
        f"check the connection's token (password) can read {source.get('repo')}, and its host for GitHub Enterprise",
    )


def diagnose(config_path: str | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Every check, in the order a failure is easiest to read; a report with all of them."""
    started = time.monotonic()
    checks: list[Check] = []

    def run(check: Callable[[], Check]) -> None:
        result = check()
        checks.append(result)
        if progress:
            progress(f"{result.name}: {result.status}")

    config, config_check = check_config(config_path)
    checks.append(config_check)
    run(check_connections_source)
    run(lambda: check_weaviate(config))
    run(check_runs_store)
    if config:
        run(lambda: check_staging(config))
        llm_conn = (config.llm or {}).get("connection")
        embedder_type = config.embedder if isinstance(config.embedder, str) else (config.embedder or {}).get("type")
        embedder_conn = (
            (config.embedder or {}).get("connection", "openai_default") if isinstance(config.embedder, dict) else "openai_default"
        )
        if llm_conn:
            run(lambda: check_openai(llm_conn, "answers and the LLM judge (llm:)"))
        if embedder_type == "openai" and embedder_conn != llm_conn:
            run(lambda: check_openai(embedder_conn, "the embedder"))
        for source in config.sources:
            if source["type"] == "slack" and source.get("connection"):
                run(partial(check_slack, source))
            if source["type"] == "github_issues" and source.get("connection"):
                run(partial(check_github, source))
    failed = [c for c in checks if c.status == FAIL]
    return {
        "ok": not failed,
        "checks": [c.to_json() for c in checks],
        "failed": len(failed),
        "warnings": len([c for c in checks if c.status == WARN]),
        "seconds": round(time.monotonic() - started, 2),
    }


def format_diagnosis(report: dict) -> str:
    marks = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL"}
    lines = []
    for check in report["checks"]:
        via = f" [{check['connection']}]" if check["connection"] else ""
        lines.append(f"{marks[check['status']]} {check['name']}{via}: {check['found']}")
        if check["fix"]:
            lines.append(f"     fix: {check['fix']}")
    lines.append(
        f"{len(report['checks'])} checks: {report['failed']} failed, {report['warnings']} warnings ({report['seconds']} s)"
    )
    return "\n".join(lines)
