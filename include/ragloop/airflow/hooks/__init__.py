"""Airflow hooks: the one place a connection becomes a client (`weaviate.RagloopWeaviateHook`).
Nothing is imported here. What an endpoint is (`WeaviateEndpoint`) is the core's: ragloop.index.endpoint."""
