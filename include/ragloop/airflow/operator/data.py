"""What the operator's page and `ragloop report` show, gathered from the real stores: Weaviate (what
is indexed, the embedder, replication, watermarks), the run store (stored DAG-run reports, runs,
votes, grades, write-back records) and Airflow's metadata (each DAG's schedule and runs, through
Airflow's own models). One JSON-able dict; `render.py` draws it, `app.py` serves it.

A store that cannot be read does not hide the others: its section carries an `error` naming it.

Over 450 lines on purpose: one gathering function per section of the page, over three stores, all
producing the one dict the page and the report render; kept together so that dict's shape is in one
place.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, UTC
from typing import Any
from collections.abc import Callable

import sqlalchemy as sa

from ragloop.catalog import GRADE_DAG_ID, INGEST_DAG_IDS
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.runs.store import EVERYTHING

log = logging.getLogger(__name__)

HISTORY_RUNS = 30  # ingest DAG runs plotted
GAPS_RUNS = 2000  # newest runs grouped into docs-gaps topics
GAPS_SHOWN = 50  # topics listed (the CSV has all)
LATE_FACTOR = 1.5  # a source is late when its last success is older than this many schedule intervals
LATE_GRACE = timedelta(hours=1)  # ... plus this, for a run that takes a while

# Embedding prices, USD per million tokens (OpenAI's list prices when this table was written). A local
# model costs nothing per token; a model not listed gives no cost.
EMBEDDING_PRICES_PER_MILLION = {
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
}

Progress = Callable[[str], None]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def embedding_cost(embedder: str | None, tokens: int) -> float | None:
    """USD for `tokens` embedding tokens: 0 for a local model, None when the price is unknown."""
    if not embedder:
        return None
    kind, _, model = embedder.partition(":")
    if kind in ("local", "local-torch", "hash"):
        return 0.0
    price = EMBEDDING_PRICES_PER_MILLION.get(model.split("@")[0])
    return None if price is None else round(tokens * price / 1_000_000, 6)


def schedule_interval(summary: str | None, now: datetime | None = None) -> timedelta | None:
    """The time between two scheduled runs, from Airflow's timetable summary ("@daily", a cron
    expression, or "Asset or 0 1 * * *" for an asset-or-time schedule); None when unscheduled."""
    from croniter import croniter

    if not summary:
        return None
    candidates = [summary.strip()]
    found = re.search(r"(@\w+|(?:\S+\s+){4}\S+)\s*$", summary.strip())
    if found:
        candidates.append(found.group(1))
    for expression in candidates:
        if croniter.is_valid(expression):
            base = now or _now()
            itr = croniter(expression, base)
            first = itr.get_next(datetime)
            return itr.get_next(datetime) - first
    return None


# --- Airflow's metadata ------------------------------------------------------------------------


def airflow_dags(dag_ids: list[str], history: int = HISTORY_RUNS) -> dict[str, Any]:
    """Per DAG: its schedule (timetable summary), paused or not, and its newest runs, from
    Airflow's metadata database through Airflow's models (the API server's and the CLI's own
    configuration say where it is)."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    out: dict[str, Any] = {}
    with create_session() as session:
        for dag_id in dag_ids:
            model = session.get(DagModel, dag_id)
            runs = session.scalars(
                sa.select(DagRun)
                .where(DagRun.dag_id == dag_id)
                .order_by(DagRun.run_after.desc(), DagRun.id.desc())
                .limit(history)
            ).all()
            out[dag_id] = {
                "known": model is not None,
                "schedule": model.timetable_summary if model else None,
                "paused": model.is_paused if model else None,
                "runs": [
                    {
                        "run_id": run.run_id,
                        "state": str(run.state.value if hasattr(run.state, "value") else run.state),
                        "run_type": str(run.run_type.value if hasattr(run.run_type, "value") else run.run_type),
                        "run_after": _iso(run.run_after),
                        "start_date": _iso(run.start_date),
                        "end_date": _iso(run.end_date),
                    }
                    for run in runs
                ],
            }
    return out


# --- Weaviate ----------------------------------------------------------------------------------


def weaviate_contents(collection: str, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> dict[str, Any]:
    """Chunks and documents per source and kind (one streaming read of three small properties),
    the recorded embedder, the replication settings and the API sources' watermarks."""
    from ragloop.index import connect, endpoint_from_connection, recorded_embedder, state_collection_name

    with connect(weaviate_conn_id) as client:
        result: dict[str, Any] = {"weaviate": endpoint_from_connection(weaviate_conn_id).url, "exists": False}
        if not client.collections.exists(collection):
            return {**result, "chunks": 0, "documents": 0, "by_source": {}, "by_kind": {}, "watermarks": {}}
        result["exists"] = True
        result["embedder"] = recorded_embedder(client, collection)
        config = client.collections.use(collection).config.get()
        replication = getattr(config, "replication_config", None)
        result["replication"] = {
            "factor": getattr(replication, "factor", None),
            "async_enabled": getattr(replication, "async_enabled", None),
            "deletion_strategy": str(getattr(replication, "deletion_strategy", "") or "") or None,
        }
        result["nodes"] = len(client.cluster.nodes()) if hasattr(client, "cluster") else None
        chunks: Counter[tuple[str, str]] = Counter()
        documents: dict[tuple[str, str], set[str]] = defaultdict(set)
        for obj in client.collections.use(collection).iterator(
            return_properties=["doc_id", "source_id", "kind"], cache_size=5000
        ):
            key = (str(obj.properties.get("source_id") or ""), str(obj.properties.get("kind") or ""))
            chunks[key] += 1
            documents[key].add(str(obj.properties.get("doc_id") or ""))
        by_source: dict[str, dict] = {}
        by_kind: dict[str, dict] = {}
        for (source_id, kind), count in sorted(chunks.items()):
            for table, name in ((by_source, source_id), (by_kind, kind)):
                entry = table.setdefault(name, {"chunks": 0, "documents": 0, "kinds": []})
                entry["chunks"] += count
                entry["documents"] += len(documents[(source_id, kind)])
            by_source[source_id]["kinds"].append(kind)
        for entry in by_kind.values():
            entry.pop("kinds")
        result.update(
            chunks=sum(chunks.values()),
            documents=sum(len(d) for d in documents.values()),
            by_source=by_source,
            by_kind=by_kind,
        )
        watermarks: dict[str, dict[str, Any]] = defaultdict(dict)
        state = state_collection_name(collection)
        if client.collections.exists(state):
            import json

            for obj in client.collections.use(state).iterator(return_properties=["source_id", "item", "state_json", "stored_at"]):
                parsed = json.loads(str(obj.properties.get("state_json") or "{}"))
                stored = obj.properties.get("stored_at")
                watermarks[str(obj.properties.get("source_id"))][str(obj.properties.get("item"))] = {
                    "watermark": parsed.get("watermark"),
                    "stored_at": stored.isoformat() if isinstance(stored, datetime) else stored,
                }
        result["watermarks"] = dict(watermarks)
        return result


# --- the run store -----------------------------------------------------------------------------


def _day(value: datetime) -> str:
    return value.astimezone(UTC).date().isoformat()


def _days(start: datetime | None, end: datetime, counts: dict[str, dict[str, int]], keys: tuple[str, ...]) -> list[dict]:
    """One row per day from the first day with data (or `start`) to `end`, zeros included."""
    if not counts and start is None:
        return []
    first = min([*counts, *([_day(start)] if start else [])])
    day = datetime.fromisoformat(first).date()
    last = max([*counts, _day(end)])
    rows = []
    while day.isoformat() <= last:
        rows.append({"day": day.isoformat(), **{k: counts.get(day.isoformat(), {}).get(k, 0) for k in keys}})
        day += timedelta(days=1)
    return rows[-90:]  # at most 90 days in a plot


def feedback_numbers(
    store, since: datetime | None = None, now: datetime | None = None, *, audience: str = EVERYTHING
) -> dict[str, Any]:
    """Runs per day, votes, pass rates per criterion and version, vetoes by reason, write-backs and
    revocations per day, of the runs `audience` may see (the store's `activity` query decides)."""
    now = now or _now()
    activity = store.activity(since, audience=audience)
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    runs = 0
    for created_at in activity["run_times"]:
        per_day[_day(created_at)]["runs"] += 1
        runs += 1
    votes = {"up": 0, "down": 0}
    for vote, created_at in activity["votes"]:
        votes[vote] += 1
        per_day[_day(created_at)][vote] += 1
    rates: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"passed": 0, "failed": 0, "undecided": 0})
    vetoes: Counter[str] = Counter()
    for criterion, version, passed, veto in activity["latest_grades"]:
        rates[(criterion, version)]["undecided" if passed is None else "passed" if passed else "failed"] += 1
        for reason in filter(None, (veto or "").split(",")):
            vetoes[reason.strip()] += 1
    written_per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    states: Counter[str] = Counter()
    for state, written_at, revoked_at in activity["writebacks"]:
        states[state] += 1
        if since is None or written_at >= since:
            written_per_day[_day(written_at)]["written"] += 1
        if revoked_at is not None and (since is None or revoked_at >= since):
            written_per_day[_day(revoked_at)]["revoked"] += 1
    pass_rates = [
        {
            "criterion": criterion,
            "version": version,
            **counts,
            "graded": sum(counts.values()),
            "pass_rate": round(counts["passed"] / sum(counts.values()), 4) if sum(counts.values()) else None,
        }
        for (criterion, version), counts in sorted(rates.items())
    ]
    return {
        "runs": runs,
        "votes": votes,
        "per_day": _days(since, now, per_day, ("runs", "up", "down")),
        "pass_rates": pass_rates,
        "vetoes": dict(sorted(vetoes.items(), key=lambda item: (-item[1], item[0]))),
        "writebacks_per_day": _days(None, now, written_per_day, ("written", "revoked")),
        "writeback_states": dict(sorted(states.items())),
    }


def published_sources(run: dict, indexed: dict[str, dict]) -> list[dict]:
    """The sources a written-back answer published: those its answer cites ([n]), with the title
    and URL the index holds for the cited chunk (`indexed`: chunk id -> chunk), as write-back
    linked them (`grading.writeback.qa_document`); not every passage the run retrieved, and not
    a URL the app recorded in place of the index's."""
    from ragloop.grading.checks import cited_numbers

    sources = run.get("sources") or []
    cited: list[dict] = []
    for number in sorted(n for n in cited_numbers(run.get("answer") or "") if 1 <= n <= len(sources)):
        source = sources[number - 1] if isinstance(sources[number - 1], dict) else {}
        chunk = indexed.get(str(source.get("chunk_id") or ""))
        if chunk is None:
            continue  # not in the index now: nothing of it is published
        doc_id = str(chunk.get("doc_id") or "")
        if doc_id and doc_id not in [c["doc_id"] for c in cited]:
            cited.append({"doc_id": doc_id, "title": str(chunk.get("title") or ""), "url": str(chunk.get("url") or "")})
    return cited


def written_back_answers(config_path: str | None, weaviate_conn_id: str, store, *, audience: str = EVERYTHING) -> list[dict]:
    """The answers in the index now (the index is the record of what is indexed) whose runs
    `audience` may see, with their provenance from the run store: question, answer, the sources
    it published, graders, votes, when written. An answer whose run the store does not hold is
    shown only to those who see everything (its visibility cannot be known)."""
    from ragloop.config import load_config
    from ragloop.grading import list_written_back
    from ragloop.index import connect, fetch_chunks

    rows = list_written_back(config_path, weaviate_conn_id)
    runs = {r["run_id"]: r for r in store.get_runs([row["run_id"] for row in rows], audience=audience)}
    chunk_ids = [
        str(s.get("chunk_id"))
        for run in runs.values()
        for s in run.get("sources") or []
        if isinstance(s, dict) and s.get("chunk_id")
    ]
    with connect(weaviate_conn_id) as client:
        indexed = fetch_chunks(client, load_config(config_path).collection, chunk_ids)
    out = []
    for row in rows:
        run = runs.get(row["run_id"])
        if run is None and audience != EVERYTHING:
            continue
        run = run or {}
        out.append(
            {
                **row,
                "answer": run.get("answer", ""),
                "app": run.get("app"),
                "asked_at": run.get("created_at"),
                "model": run.get("model"),
                "sources": published_sources(run, indexed)[:5],
            }
        )
    out.sort(key=lambda r: (r.get("written_at") or "", r["run_id"]), reverse=True)
    return out


def feedback_ranking(store, config, *, audience: str = EVERYTHING) -> dict[str, Any]:
    """What votes do to retrieval for `audience` (the run store's queries): the most boosted and
    demoted chunks with their votes, every chunk an operator acted on with who, when and why, the
    curated answers that served questions with their hit counts, and the config's switches."""
    from ragloop.feedback.boosts import BoostPolicy

    settings = config.feedback_ranking
    report = store.boost_report(audience=audience, policy=BoostPolicy(half_life_days=settings.half_life_days))
    return {
        **report,
        "curated": store.curated_hits(audience=audience),
        "settings": {
            "boosts": settings.boosts,
            "curated_answers": settings.curated_answers,
            "curated_threshold": settings.curated_threshold,
            "half_life_days": dict(settings.half_life_days),
        },
    }


# --- ingest history and sources ----------------------------------------------------------------


def ingest_run_row(stored: dict, embedder: str | None) -> dict:
    """One stored ingest report as a row of the history: documents, chunks, tokens, cost, seconds."""
    report = stored["report"]
    documents: Counter[str] = Counter()
    for source in report.get("sources", {}).values():
        for key, value in source.get("documents", {}).items():
            documents[key] += value or 0
    totals = report.get("totals", {})
    seconds = report.get("seconds", {})
    extract = [s.get("seconds", {}).get("extract") for s in report.get("sources", {}).values()]
    tokens = int(report.get("embedding_tokens") or 0)
    return {
        "dag_id": stored["dag_id"],
        "dag_run_id": stored["dag_run_id"],
        "created_at": stored["created_at"],
        "ok": stored["ok"],
        "sources": sorted(report.get("sources", {})),
        "documents": {k: documents.get(k, 0) for k in ("new", "changed", "unchanged", "deleted", "failed", "skipped")},
        "chunks": {k: totals.get(k, 0) for k in ("embedded", "reused", "written", "deleted")},
        "embedding_tokens": tokens,
        "estimated_cost_usd": embedding_cost(embedder, tokens),
        "seconds": {
            "extract": round(sum(x for x in extract if x), 2),
            "plan": seconds.get("plan") or 0,
            "index": seconds.get("index") or 0,
            "prune": seconds.get("prune") or 0,
        },
        "errors": report.get("errors", []),
    }


def credential_findings(found: dict | None, audience: str) -> dict | None:
    """What a viewer of `audience` is shown of a source's credential findings: the counts to
    everyone, the documents' names only to internal viewers (naming a public page that holds a live
    key points a stranger at it before anyone has fixed it). Never the secret: ingest keeps none."""
    if not found:
        return None
    shown = {"documents": found.get("documents", 0), "quarantined": found.get("quarantined", 0)}
    if audience == EVERYTHING:
        shown["named"] = [
            {"doc_id": d.get("doc_id"), "rules": d.get("rules", []), "quarantined": d.get("quarantined")}
            for d in found.get("named", [])
        ]
    return shown


def source_states(
    config, weaviate: dict, stored_ingests: list[dict], dags: dict[str, Any] | None, now: datetime, *, audience: str = EVERYTHING
) -> list[dict]:
    """Per configured source: what the index holds, its last successful ingest, watermarks or
    listing time, the failed documents of its last run, and its freshness against the schedule."""
    out = []
    for source in config.sources:
        source_id, source_type = source["id"], source["type"]
        dag_id = INGEST_DAG_IDS.get(source_type)
        mine = [r for r in stored_ingests if source_id in r["report"].get("sources", {})]  # newest first
        last = mine[0] if mine else None
        last_detail = last["report"]["sources"][source_id] if last else {}
        success = next((r for r in mine if "error" not in r["report"]["sources"][source_id]), None)
        dag = (dags or {}).get(dag_id or "", {})
        interval = schedule_interval(dag.get("schedule"), now) if dag else None
        finished = [r for r in dag.get("runs", []) if r["state"] in ("success", "failed")]
        latest_dag_run = finished[0] if finished else None
        indexed = weaviate.get("by_source", {}).get(source_id, {"chunks": 0, "documents": 0})
        entry: dict[str, Any] = {
            "source_id": source_id,
            "type": source_type,
            "dag_id": dag_id,
            "chunks": indexed["chunks"],
            "documents": indexed["documents"],
            "schedule": dag.get("schedule"),
            "paused": dag.get("paused"),
            "interval_hours": round(interval.total_seconds() / 3600, 2) if interval else None,
            "last_success": success["created_at"] if success else None,
            "last_success_dag_run": success["dag_run_id"] if success else None,
            "last_run": last["created_at"] if last else None,
            "last_run_dag_run": last["dag_run_id"] if last else None,
            "mode": last_detail.get("mode"),
            "failed_documents": last_detail.get("failures", []),
            # Documents its last run found holding a credential (doc id, rules; never the value).
            "credentials": credential_findings(last_detail.get("credentials"), audience),
            "error": last_detail.get("error"),
            "watermarks": weaviate.get("watermarks", {}).get(source_id, {}),
            # A source without watermarks lists everything it has at each run: its listing time is the run's.
            "listing_time": success["created_at"] if success and not weaviate.get("watermarks", {}).get(source_id) else None,
            "latest_dag_run": latest_dag_run,
        }
        entry["freshness"], entry["freshness_reason"] = freshness(entry, interval, now)
        out.append(entry)
    return out


def freshness(entry: dict, interval: timedelta | None, now: datetime) -> tuple[str, str]:
    """green / late / failing, and why. Failing: the source's last ingest reported an error, or the
    DAG's newest finished run failed after it. Late: no successful ingest within LATE_FACTOR
    schedule intervals (plus LATE_GRACE), or none at all."""
    last_run = _parse(entry["last_run"])
    dag_run = entry.get("latest_dag_run")
    if entry.get("error"):
        return "failing", f"last ingest failed: {entry['error']}"
    if dag_run and dag_run["state"] == "failed":
        ended = _parse(dag_run["end_date"]) or _parse(dag_run["run_after"])
        if ended and (last_run is None or ended > last_run):
            return "failing", f"{entry['dag_id']} run {dag_run['run_id']} failed"
    success = _parse(entry["last_success"])
    if success is None:
        return "late", "never ingested successfully"
    age = now - success
    if interval is not None and age > interval * LATE_FACTOR + LATE_GRACE:
        return "late", f"last success {_age(age)} ago; scheduled every {_age(interval)}"
    if interval is None:
        return "green", f"last success {_age(age)} ago; not scheduled"
    return "green", f"last success {_age(age)} ago; scheduled every {_age(interval)}"


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --- docs gaps ---------------------------------------------------------------------------------


def docs_gaps(
    store,
    config,
    since: datetime | None,
    limit: int = GAPS_RUNS,
    progress: Progress | None = None,
    *,
    audience: str = EVERYTHING,
) -> dict[str, Any]:
    """`ragloop.gaps` over the newest runs `audience` may see: topics, the ones the docs serve
    worst first (their example questions and cited titles are of those runs only)."""
    from ragloop import gaps
    from ragloop.embedding import make_embedder

    runs = store.list_runs(since=since, limit=limit, audience=audience)
    result: dict[str, Any] = {
        "audience": audience,
        "runs": len(runs),
        "method": gaps.DEFAULT_METHOD,
        "threshold": gaps.DEFAULT_THRESHOLD,
        "topics": [],
    }
    if len(runs) < 2:
        result["note"] = "fewer than two recorded questions: nothing to group yet"
        return result
    vectors = gaps.question_vectors(make_embedder(config.embedder), runs, progress=progress)
    topics = gaps.find_topics(runs, vectors)
    result["topics"] = [t.to_json() for t in topics]
    result["csv"] = gaps.topics_csv(topics)
    return result


# --- everything --------------------------------------------------------------------------------


def _section(name: str, func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Exception as err:
        log.exception("Reading %s failed", name)
        return {"error": f"{name}: {type(err).__name__}: {err}"}


def gather(
    config_path: str | None = None,
    since: datetime | None = None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
    *,
    store=None,
    history: int = HISTORY_RUNS,
    with_gaps: bool = True,
    gaps_provider: Callable[[], dict] | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    audience: str = EVERYTHING,
) -> dict[str, Any]:
    """Everything the page and the report show (see the module doc) to a viewer of `audience`:
    runs, answers, questions and titles of the runs it may see (the run store's queries decide).
    `gaps_provider` replaces the docs-gaps computation (the page caches it)."""
    from ragloop.config import load_config
    from ragloop.runs import RunStore, describe_runs_store
    from ragloop.runs.reports import list_reports

    now = now or _now()
    config = load_config(config_path)
    say = progress or (lambda _message: None)
    owned = store is None
    store = store or RunStore.default()
    try:
        say("Reading Weaviate...")
        weaviate = _section("Weaviate", lambda: weaviate_contents(config.collection, weaviate_conn_id))
        say("Reading Airflow's metadata...")
        dags = _section("Airflow's metadata", lambda: airflow_dags([*INGEST_DAG_IDS.values(), GRADE_DAG_ID], history))
        say("Reading the run store...")
        stored_ingests = _section("the run store's reports", lambda: list_reports(store, "ingest", since=since, limit=500))
        stored_feedback = _section("the run store's reports", lambda: list_reports(store, "feedback", since=since, limit=history))
        reports_error = next((s["error"] for s in (stored_ingests, stored_feedback) if isinstance(s, dict)), None)
        stored_ingests = stored_ingests if isinstance(stored_ingests, list) else []
        stored_feedback = stored_feedback if isinstance(stored_feedback, list) else []
        embedder = (weaviate.get("embedder") or {}).get("embedder") if "error" not in weaviate else None
        weaviate_ok = "error" not in weaviate
        dags_ok = "error" not in dags

        knowledge_base: dict[str, Any] = {
            "collection": config.collection,
            "configured_embedder": str(config.embedder),
            **({k: v for k, v in weaviate.items() if k != "watermarks"} if weaviate_ok else {"error": weaviate["error"]}),
        }
        knowledge_base["sources"] = source_states(
            config, weaviate if weaviate_ok else {}, stored_ingests, dags if dags_ok else None, now, audience=audience
        )
        history_rows = [ingest_run_row(r, embedder) for r in stored_ingests[:history]][::-1]  # oldest first
        ingest_history: dict[str, Any] = {"runs": history_rows, "embedder": embedder}
        if reports_error:
            ingest_history["error"] = reports_error
        say("Reading runs, votes, grades and write-backs...")
        feedback: dict[str, Any] = _section("the run store", lambda: feedback_numbers(store, since, now, audience=audience))
        feedback["reports"] = [
            {
                "dag_run_id": r["dag_run_id"],
                "created_at": r["created_at"],
                "ok": r["ok"],
                **{
                    k: r["report"].get(k) for k in ("judge", "selected", "graded", "vetoed", "judge_tokens", "estimated_cost_usd")
                },
                "written": (r["report"].get("write_back") or {}).get("written"),
                "revoked": (r["report"].get("write_back") or {}).get("revoked"),
            }
            for r in stored_feedback
        ]
        say("Reading the written-back answers...")
        written = _section(
            "the written-back answers", lambda: written_back_answers(config_path, weaviate_conn_id, store, audience=audience)
        )
        if isinstance(written, dict):
            feedback["written_back_error"] = written["error"]
            written = []
        feedback["written_back"] = written
        say("Reading what feedback does to retrieval...")
        ranking: dict[str, Any] = _section("feedback in retrieval", lambda: feedback_ranking(store, config, audience=audience))
        gaps: dict[str, Any] = {}
        if with_gaps:
            say("Grouping the recorded questions into topics (docs gaps)...")
            gaps = _section(
                "docs gaps", gaps_provider or (lambda: docs_gaps(store, config, since, progress=progress, audience=audience))
            )
        return {
            "generated_at": now.isoformat(),
            "audience": audience,
            "since": _iso(since),
            "config": str(config.path),
            "collection": config.collection,
            "runs_store": describe_runs_store(),
            "knowledge_base": knowledge_base,
            "ingest_history": ingest_history,
            "feedback": feedback,
            "ranking": ranking,
            "gaps": gaps,
            "airflow": dags if dags_ok else {"error": dags["error"]},
        }
    finally:
        if owned:
            store.close()
