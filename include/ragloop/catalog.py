"""The names of ragloop's DAGs and assets, as plain strings: every DAG id and the runs asset's name
and URI. The core reads them (a report names its DAG, `ragloop ingest` runs a DAG by its source
type); the Airflow objects built from them (the DAGs' shared defaults, the `Asset`s) are in
airflow/assets.py."""

from __future__ import annotations

CHECK_DAG_ID = "ragloop_check"
GRADE_DAG_ID = "ragloop_grade_feedback"
# One ingest DAG per source type (the `type` of a source in sources.yaml).
INGEST_DAG_IDS = {
    "docs": "ragloop_ingest_docs",
    "slack": "ragloop_ingest_slack",
    "github_issues": "ragloop_ingest_github_issues",
}
INGEST_DAG_ID = INGEST_DAG_IDS["docs"]

RUNS_ASSET_NAME = "ragloop_runs"
RUNS_ASSET_URI = "ragloop://runs"
# The ingest asset is named after the collection: ragloop_<collection>, ragloop://weaviate/<collection>.
INGEST_ASSET_PREFIX = "ragloop_"
INGEST_ASSET_URI_PREFIX = "ragloop://weaviate/"
