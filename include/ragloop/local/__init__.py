"""Local operations: running things on this machine. The project's local Airflow environment
(localenv), the local Weaviate binary, background processes by process group, the cluster on one
machine (`make cluster`) and the ONNX export. Neither the core nor the Airflow layer imports it;
only the `ragloop` command (ragloop.cli) drives it. Nothing is imported here."""
