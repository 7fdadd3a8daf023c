"""Real user questions nobody here wrote: 921 Stack Overflow threads tagged `airflow`, as the
astronomer/ask-astro repository ships them for its own ingestion
(`airflow/include/data/stack_overflow/base.parquet`: one row per thread, `content` holding the
title, the question, its comments and the answers, `docLink` the thread's address).

The file is read in place from a `fetch`ed mirror of that repository (never copied into this
one) and needs pyarrow, which ragloop does not depend on:

    git clone https://github.com/astronomer/ask-astro /some/where      # or any mirror of it
    uv run --frozen --with pyarrow python bench/gaps.py --public /some/where
    (default path: /work/.mirror/astronomer+ask-astro/repo, a bare mirror read with `git show`)

Splits are fixed by the thread: a thread whose Stack Overflow id is even is in the tuning split,
odd in the report split. Constants are chosen on `tune` and reported on `report`.
"""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ragloop.errors import RagloopError

REPOSITORY = "astronomer/ask-astro"
PATH = "airflow/include/data/stack_overflow/base.parquet"
DEFAULT_MIRROR = Path("/work/.mirror/astronomer+ask-astro/repo")
SPLITS = ("tune", "report")

ANSWER_HEADER = re.compile(r"^\n?DATE: .*\nBY: .*\nSCORE: .*\n", re.MULTILINE)
COMMENT = re.compile(r"^\d+ on \d{4}-\d\d-\d\d [\d:.]+ \[Score: -?\d+\]: .*$", re.MULTILINE)


class PublicDataMissing(RagloopError):
    """The public data set is not where the bench looks for it."""


@dataclass
class Thread:
    thread_id: int
    url: str
    title: str
    question: str  # the question's body, comments left out
    answers: str  # every answer of the thread, in the file's order
    split: str  # tune | report


def provenance(where: Path = DEFAULT_MIRROR) -> dict:
    commit = _git(where, "log", "-1", "--format=%H", "--", PATH) if _is_git(where) else None
    return {"repository": REPOSITORY, "path": PATH, "commit": commit, "read_from": str(where),
            "what": "Stack Overflow threads tagged airflow (title, question, answers), as ask-astro ingests them",
            "split": "thread id even: tune; odd: report"}


def _is_git(where: Path) -> bool:
    return (where / "HEAD").exists() or (where / ".git").exists()


def _git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, check=True).stdout.strip()


def _read_bytes(where: Path) -> bytes:
    if (where / PATH).exists():  # a work tree
        return (where / PATH).read_bytes()
    if _is_git(where):
        done = subprocess.run(["git", "-C", str(where), "show", f"HEAD:{PATH}"], capture_output=True)
        if done.returncode == 0:
            return done.stdout
    raise PublicDataMissing(
        f"{PATH} of {REPOSITORY} is not under {where}: clone that repository (or fetch its mirror) and pass its "
        "folder with --public"
    )


def load_threads(where: Path = DEFAULT_MIRROR) -> list[Thread]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise PublicDataMissing(
            "reading the Stack Overflow threads needs pyarrow: run the bench with `uv run --frozen --with pyarrow python ...`"
        ) from None
    table = parquet.read_table(io.BytesIO(_read_bytes(where))).to_pylist()
    threads = []
    for row in table:
        content, url = row["content"], row["docLink"]
        match = re.search(r"TITLE: (.*)\n", content)
        number = re.search(r"/questions/(\d+)", url)
        if not match or not number:
            raise PublicDataMissing(f"{REPOSITORY}:{PATH}: row {url!r} has no TITLE line or no question id")
        body = content[match.end():]
        parts = ANSWER_HEADER.split(body)
        # parts[0]: empty; parts[1]: the question (with its comments); parts[2:]: the answers.
        question = COMMENT.sub("", parts[1] if len(parts) > 1 else "").strip()
        answers = "\n\n".join(COMMENT.sub("", part).strip() for part in parts[2:]).strip()
        thread_id = int(number.group(1))
        threads.append(Thread(thread_id, url, match.group(1).strip(), question, answers, SPLITS[thread_id % 2]))
    return threads
