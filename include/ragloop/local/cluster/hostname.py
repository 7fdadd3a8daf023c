"""Airflow's `core.hostname_callable` for the workers of `ragloop cluster`: both run on one
machine, so each is given a name of its own (`RAGLOOP_WORKER_HOSTNAME`), which Airflow records on
every task instance the worker runs."""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "RAGLOOP_WORKER_HOSTNAME"


def worker_hostname() -> str:
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()
