"""Keeps the knowledge base in step with the Slack sources of `include/sources.yaml` (Airflow DAG).

One document per thread. Live sources read each channel's history from its watermark (kept in
the index) minus an overlap, and re-read the threads active within `lookback_days`, so late
replies to older threads are picked up; exports are read whole. The watermarks advance only
after the run's documents are indexed. Trigger with `sources` for a subset, `full_refresh` to
rewrite every document, `full_listing` to read everything and prune deleted threads.
The flow is shared by every ingest DAG: `ragloop.airflow.ingest_dag`.
"""

from ragloop.catalog import INGEST_DAG_IDS
from ragloop.airflow.ingest_dag import ingest_dag

ingest_dag(dag_id=INGEST_DAG_IDS["slack"], source_type="slack", doc_md=__doc__, api_source=True)()
