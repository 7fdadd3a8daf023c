"""Where a ragloop project is and where it keeps its state and caches: plain folders, no Airflow.
The core reads these (the run store's SQLite file, staged documents, cached clones, tokenizer data);
local/localenv.py builds the no-Docker mode's Airflow environment on top of them."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ENV = "RAGLOOP_PROJECT_DIR"
STATE_ENV = "RAGLOOP_STATE_DIR"


def project_root() -> Path:
    """The Astro project folder: `RAGLOOP_PROJECT_DIR`, else the nearest parent of the working
    directory holding `dags/` and `include/sources.yaml`, else the checkout this package sits in."""
    if os.environ.get(PROJECT_ENV):
        return Path(os.environ[PROJECT_ENV]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dags").is_dir() and (folder / "include" / "sources.yaml").is_file():
            return folder
    return Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """The ignored folder for local state: Weaviate data, the Airflow DB, staged documents."""
    path = Path(os.environ.get(STATE_ENV) or project_root() / ".ragloop")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Per-user cache shared by every clone (the Weaviate binary, tiktoken data)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragloop"
