"""The operator's view: a ragloop page in the Airflow UI (`app`, mounted by plugins/ragloop_plugin.py)
and `ragloop report` (HTML with the plots inlined, or JSON), both drawn from `data.gather()`."""
