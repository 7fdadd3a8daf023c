"""Airflow hooks: the one place a connection becomes a client (`weaviate.RagloopWeaviateHook`).
Nothing is imported here, so `hooks.endpoint` loads without Airflow."""
