# Astro Runtime 3.3-8 ships Apache Airflow 3.3.2: the version pinned in pyproject.toml and uv.lock.
# tests/unit/test_astro_files.py fails when these disagree; the RUN below fails the build if they do.
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.12

ARG AIRFLOW_VERSION=3.3.2
RUN python -c "import sys, airflow; v = airflow.__version__; sys.exit(0 if v == '${AIRFLOW_VERSION}' else f'image has Airflow {v}, ragloop pins ${AIRFLOW_VERSION}')"

# The provider package lives in include/ragloop; the project folder is /usr/local/airflow.
ENV PYTHONPATH="/usr/local/airflow/include"
# The embedding model ships inside a Python package; never reach for a model hub.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Inside Docker, Weaviate is the `weaviate` service of docker-compose.override.yml. This
# overrides the host-side connection in airflow_settings.yaml (127.0.0.1:18080) for the containers.
ENV AIRFLOW_CONN_WEAVIATE_DEFAULT='{"conn_type": "weaviate", "host": "weaviate", "port": 8080, "extra": {"grpc_host": "weaviate", "grpc_port": 50051}}'
