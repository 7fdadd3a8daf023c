"""Keeps the knowledge base in step with the GitHub issues sources of `include/sources.yaml` (Airflow DAG).

One document per issue, its state first. Live sources read the issues updated since the
repository's watermark (kept in the index) minus an overlap, with their comments; exports are
read whole. The watermarks advance only after the run's documents are indexed. Trigger with
`sources` for a subset, `full_refresh` to rewrite every document, `full_listing` to read every
issue and prune deleted or transferred ones.
The flow is shared by every ingest DAG: `ragloop.airflow.ingest_dag`.
"""

from ragloop.catalog import INGEST_DAG_IDS
from ragloop.airflow.ingest_dag import ingest_dag

ingest_dag(dag_id=INGEST_DAG_IDS["github_issues"], source_type="github_issues", doc_md=__doc__, api_source=True)()
