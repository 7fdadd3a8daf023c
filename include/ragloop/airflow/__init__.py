"""The Airflow layer: what runs inside Airflow or speaks to it. The hook and connection reading
(hooks/, connections), the public task groups and operators, the DAG factories and their assets,
the plugins' apps (runs API, operator page), lineage, asset events, running a DAG for the CLI, and
`ragloop doctor`. It builds on the core (everything outside ragloop.airflow, ragloop.local and
ragloop.cli), which imports nothing from here except the few connection lookups that go through
Airflow's secrets backends (tests/unit/test_layers.py lists them). Nothing is imported here."""
