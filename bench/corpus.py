"""A generated markdown corpus for benchmarks and large tests: deterministic for a seed, with
front matter, headings, paragraphs, lists and code blocks, and the edits the benchmark applies
(one line changed in some files, some files deleted)."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ["agent", "api", "archive", "backup", "batch", "bucket", "cache", "cluster", "config", "connection", "container", "cursor", "daemon", "database", "deploy", "disk", "endpoint", "event", "export", "field", "filter", "flag", "gateway", "graph", "hash", "header", "index", "input", "job", "key", "label", "latency", "layer", "limit", "log", "metric", "migration", "mode", "module", "namespace", "node", "offset", "operator", "partition", "path", "payload", "plugin", "policy", "pool", "port", "process", "proxy", "query", "queue", "quota", "record", "region", "release", "replica", "request", "resource", "retry", "role", "rollout", "route", "schedule", "schema", "secret", "segment", "server", "service", "session", "shard", "signal", "snapshot", "socket", "source", "stage", "storage", "stream", "subnet", "task", "tenant", "thread", "token", "topic", "trace", "traffic", "trigger", "upgrade", "user", "value", "version", "volume", "webhook", "worker", "zone", "sync", "async", "timeout", "window", "budget", "checksum", "fallback", "handshake", "lease", "mirror", "quorum"]
VERBS = ["configure", "restart", "verify", "rotate", "enable", "disable", "inspect", "upgrade", "export", "import", "drain", "scale", "pin"]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    words.insert(rng.randint(1, 3), rng.choice(VERBS))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?"])


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))


def _code(rng: random.Random) -> str:
    lines = [f"{rng.choice(VERBS)}_{rng.choice(WORDS)} --{rng.choice(WORDS)}={rng.randint(1, 9999)}" for _ in range(rng.randint(2, 8))]
    return "```bash\n" + "\n".join(lines) + "\n```"


def _list(rng: random.Random) -> str:
    return "\n".join(f"- {_sentence(rng)}" for _ in range(rng.randint(2, 5)))


def document(rng: random.Random, number: int) -> str:
    title = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} guide {number}"
    parts = [f"---\ntitle: {title}\n---\n", f"# {title}\n", _paragraph(rng) + "\n"]
    for section in range(rng.randint(1, 3)):
        parts.append(f"## {rng.choice(VERBS).capitalize()} the {rng.choice(WORDS)} {section}\n")
        for _ in range(rng.randint(1, 2)):
            block = rng.random()
            parts.append((_code(rng) if block < 0.2 else _list(rng) if block < 0.35 else _paragraph(rng)) + "\n")
        if rng.random() < 0.4:
            parts.append(f"### {rng.choice(WORDS).capitalize()} details\n")
            parts.append(_paragraph(rng) + "\n")
    return "\n".join(parts)


def generate(folder: Path, files: int, seed: int = 7) -> list[Path]:
    """Write `files` markdown files under `folder` (in a few sub-folders); returns their paths."""
    rng = random.Random(seed)
    paths = []
    for number in range(files):
        path = folder / f"area-{number % 20:02d}" / f"page-{number:06d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document(rng, number))
        paths.append(path)
    return paths


def edit_one_line(paths: list[Path], fraction: float, seed: int = 11) -> list[Path]:
    """Change one paragraph line in `fraction` of the files (at least one)."""
    rng = random.Random(seed)
    chosen = rng.sample(paths, max(1, round(len(paths) * fraction)))
    for path in chosen:
        lines = path.read_text().split("\n")
        candidates = [i for i, line in enumerate(lines) if line and line[0].isalpha()]
        i = rng.choice(candidates)
        lines[i] = lines[i] + f" Edited {rng.randint(0, 10**6)}."
        path.write_text("\n".join(lines))
    return chosen


def delete_some(paths: list[Path], fraction: float, seed: int = 13) -> list[Path]:
    rng = random.Random(seed)
    chosen = rng.sample(paths, max(1, round(len(paths) * fraction)))
    for path in chosen:
        path.unlink()
    return chosen
