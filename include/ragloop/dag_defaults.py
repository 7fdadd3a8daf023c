"""What every ragloop DAG shares: owner, retries with backoff, tags."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_ARGS = {
    "owner": "ragloop",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
TAGS = ["ragloop"]
