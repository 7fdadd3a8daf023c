"""Keeps the knowledge base in step with the docs sources of `include/sources.yaml` (Airflow DAG).

select sources → extract (one mapped task per source; documents staged as files) → plan (one
streaming read of the index) → index (one mapped task per batch of new and changed documents)
→ prune (documents gone from complete listings) → report (log, return value, asset event).
Only changed text is embedded; re-running any task, or the whole DAG, converges to the same index.
Trigger with `sources` to ingest some sources only, `full_refresh` to rewrite every document.
The flow is shared by every ingest DAG: `ragloop.airflow.ingest_dag`.
"""

from ragloop.catalog import INGEST_DAG_IDS
from ragloop.airflow.ingest_dag import ingest_dag

ingest_dag(dag_id=INGEST_DAG_IDS["docs"], source_type="docs", doc_md=__doc__)()
