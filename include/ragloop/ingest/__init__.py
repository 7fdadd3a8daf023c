"""Ingestion: extract → stage → plan → index → prune → report. `planning` is the pure core of the plan."""
