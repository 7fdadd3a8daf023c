"""Checks that ragloop can work: Weaviate reachable, the collection matches the embedder, the
embedder embeds. Trigger it after changing connections or `embedder:` in sources.yaml."""

from airflow.sdk import Param, dag, task

from ragloop.airflow.assets import DEFAULT_ARGS, TAGS
from ragloop.catalog import CHECK_DAG_ID
from ragloop.index.endpoint import WEAVIATE_CONN_ID


@dag(
    dag_id=CHECK_DAG_ID,
    schedule=None,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "setup"],
    params={
        "config": Param(None, type=["null", "string"], description="sources.yaml path (default: include/sources.yaml)"),
        "weaviate_conn_id": Param(WEAVIATE_CONN_ID, type="string", description="Airflow connection of the Weaviate to check"),
    },
    doc_md=__doc__,
)
def ragloop_check():
    @task
    def check_weaviate(params=None) -> dict:
        from ragloop.setup_checks import check_weaviate

        return check_weaviate(params["weaviate_conn_id"])

    @task
    def prepare_collection(params=None) -> dict:
        from ragloop.setup_checks import prepare_collection

        return prepare_collection(params["config"], params["weaviate_conn_id"])

    @task
    def measure_embedder(params=None) -> dict:
        from ragloop.setup_checks import measure_embedder

        return measure_embedder(params["config"], limit=64)

    check_weaviate() >> prepare_collection() >> measure_embedder()


ragloop_check()
