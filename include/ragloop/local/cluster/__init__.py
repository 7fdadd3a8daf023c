"""ragloop on a distributed Airflow, proven on one machine: `ragloop cluster start|stop|status|demo`
(`make cluster`, `make cluster-stop`). See `ragloop.local.cluster.runner` for what runs where."""

from ragloop.local.cluster.services import ClusterError

__all__ = ["ClusterError"]
