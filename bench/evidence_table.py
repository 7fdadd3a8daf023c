"""The drill tables of docs/evidence.md, built from the committed results files (never typed by
hand): one row per drill of bench/results/cluster-drills.json, and one per drill broken on
purpose of bench/results/cluster-drills-broken.json, and the history: drill 4 run again alone
after its fix (bench/results/cluster-drills-drill4-rerun.json), printed between the two.

    .venv/bin/python bench/evidence_table.py            # prints the markdown
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def key_figures(drill: dict) -> str:
    seen = drill["seen"]
    parts = []
    versus = seen.get("versus_reference")
    if versus:
        parts.append(f"{versus['chunks']} of {versus['reference']} chunks, {versus['lost']} lost, "
                     f"{versus['duplicated']} duplicated, {versus['stale']} stale")
    for name, label in (("retried_tasks", "retried"), ("staging_errors", "StagingErrors"), ("responses", "responses"),
                        ("retry_after", "Retry-After"), ("writeback", "write-back"), ("revoked", "revoked"),
                        ("deleted_doc_back", "deleted doc back"), ("revoked_answer_back", "revoked answer back"),
                        ("new_leader", "new leader"), ("new_leader_seen_after_s", "new leader seen after (s)"),
                        ("quorum_write_written_collection", "QUORUM write"),
                        ("quorum_write_fresh_collection", "write to a never-written collection"),
                        ("scheduler_pid", "scheduler pid")):
        if name in seen and seen[name] not in (None, {}, []):
            value = seen[name]
            if isinstance(value, dict) and "attempts" in value:
                value = ", then ".join(f"{'ok' if a['ok'] else 'failed'} in {a['seconds']} s" for a in value["attempts"])
            parts.append(f"{label}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return "; ".join(parts).replace("|", "\\|")


def table(path: Path, broken: bool) -> str:
    data = json.loads(path.read_text())
    lines = [f"From `{path.relative_to(path.parents[2])}`: {data['date']}, commit {data['commit'][:10]}"
             f"{' (uncommitted changes)' if data.get('dirty') else ''}, {data['machine']['cpus']} CPUs, "
             f"{data['passed']} of {len(data['drills'])} passed, {data['seconds'] / 60:.0f} min.", ""]
    if broken:
        lines += ["| drill | broken on purpose | result | failed checks |", "| --- | --- | --- | --- |"]
        for d in data["drills"]:
            failed = "; ".join(d["failed_checks"]).replace("|", "\\|")
            lines.append(f"| {d['drill']}. {d['title']} | {d['broken_on_purpose']} | {'PASS' if d['ok'] else 'FAIL'} | {failed} |")
    else:
        lines += ["| drill | injected | key figures | result |", "| --- | --- | --- | --- |"]
        for d in data["drills"]:
            result = "PASS" if d["ok"] else "FAIL: " + "; ".join(d["failed_checks"]).replace("|", "\\|")
            lines.append(f"| {d['drill']}. {d['title']} | {d['injected'].replace('|', '/')} | {key_figures(d)} | {result} |")
    return "\n".join(lines)


def main() -> int:
    for name, broken in (("cluster-drills.json", False), ("cluster-drills-drill4-rerun.json", False),
                         ("cluster-drills-broken.json", True)):
        path = RESULTS / name
        print(table(path, broken) if path.exists() else f"({name} not written yet: `make cluster-drills`)")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
