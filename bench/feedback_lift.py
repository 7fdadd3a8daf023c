"""Does the feedback loop make later answers better? Measured over simulated days on public
Stack Overflow threads nobody here wrote, with every real piece: a private Weaviate
(bench_env), the local ONNX embedder, `ask` (offline, extractive) inside a RunRecorder on a
SQLite run store, votes through the run store, and the feedback DAG's own task bodies
(select_runs -> grade_batch with the offline judge -> write_back) after each day. Not a test.

    uv run --frozen --with pyarrow python bench/feedback_lift.py            # or: make bench-lift
    uv run --frozen --with pyarrow python bench/feedback_lift.py --public DIR --threads 60 --days 4

Data (bench/lift_data.py): astronomer/ask-astro's `airflow/include/data/stack_overflow/base.parquet`
read in place from a clone or mirror (`--public`, default /work/.mirror/astronomer+ask-astro/repo;
get it with `git clone https://github.com/astronomer/ask-astro`). Every thread's answers are
indexed (921 documents); per split (thread id even: tune, odd: report) `--threads` threads are
sampled; each is asked first by its title and, a day later, by its question body.

Votes follow the labels: one simulated user per question votes up when the answer cites the
thread's answers document (or a written-back answer citing it), down otherwise.

Variants, each run from the same index with no written-back answer and an empty run store:
- none: no feedback; every day's questions against the index as ingested;
- writeback: the loop as it ships: good runs written back as `qa` documents;
- boosts: writeback + vote boosts on the cited sources; curated: boosts + curated answers served
  first. Both need the issue25-ranking work; without it they are reported as not run, with why.

Figures per split, variant and day (bench/lift_metrics.py): recall@5 and MRR@5 of the labelled
document (a written-back answer citing it counts), for all questions and for first/repeat ones;
the share answered by a curated answer and the wrong curated hits; and harm against `none` on the
same question: the good source ranked lower, or lost from the top 5.
Knobs are chosen on `tune` only (see --written-back-shares); `report` is run once with them.
Writes bench/results/feedback-lift-<date>.json and feedback-lift-<date>.md (+ a PNG with matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from bench_env import bench_environment, log  # noqa: E402
from lift_data import Day, Question, doc_id_of, sample_threads, schedule, write_corpus  # noqa: E402
from lift_metrics import TOP_K, Hit, Outcome, harm, summarise  # noqa: E402

from ragloop.errors import RagloopError  # noqa: E402

if TYPE_CHECKING:
    from ragloop.answer import Answer

COLLECTION = "FeedbackLift"
VARIANTS = ("none", "writeback", "boosts", "curated")
RANKING_BRANCH = "issue25-ranking"


class VariantUnavailable(RagloopError):
    """A variant needs code this checkout does not have."""


@dataclass
class Variant:
    name: str
    loop: bool  # votes, grading and write-back run after each day
    config: dict = field(default_factory=dict)  # keys added to sources.yaml


def ranking_support() -> str | None:
    """Why the boosts and curated variants cannot run here, or None when they can."""
    try:
        import ragloop.feedback.settings  # noqa: F401 - the sources.yaml section the variants turn on
    except ImportError:
        return f"needs {RANKING_BRANCH}: this checkout has no ragloop.feedback.settings (feedback_ranking)"
    return None


def variant(name: str, written_back_share: float, curated_threshold: float | None = None) -> Variant:
    if name == "none":
        return Variant(name, loop=False)
    if name == "writeback":
        return Variant(name, loop=True, config={"written_back_share": written_back_share})
    reason = ranking_support()
    if reason:
        raise VariantUnavailable(f"variant {name}: {reason}")
    ranking: dict = {"boosts": True}
    if name == "curated":
        ranking["curated_answers"] = True
        if curated_threshold is not None:
            ranking["curated_threshold"] = curated_threshold
    return Variant(name, loop=True, config={"written_back_share": written_back_share, "feedback_ranking": ranking})


# --- one question ----------------------------------------------------------------------------------

class Runs:
    """What the bench knows of the runs it recorded: run id -> the documents its answer cites
    (through a cited written-back answer too), to judge a written-back answer when it is retrieved."""

    def __init__(self) -> None:
        self.cited: dict[str, frozenset[str]] = {}

    def hits(self, sources) -> list[Hit]:
        from ragloop.documents import qa_run_id

        out = []
        for source in sources:
            cited = self.cited.get(qa_run_id(source.doc_id), frozenset()) if source.written_back else frozenset()
            out.append(Hit(source.doc_id, cited))
        return out

    def cited_by(self, answer) -> frozenset[str]:
        """Documents the answer quotes from; a quoted written-back answer adds what it cites."""
        hits = self.hits(answer.sources)
        numbers = {span["source"] for span in answer.quoted}
        docs: set[str] = set()
        for number in numbers:
            if 1 <= number <= len(hits):
                docs.add(hits[number - 1].doc_id)
                docs |= hits[number - 1].cited_doc_ids
        return frozenset(docs)


def ask_one(question: Question, config_path: Path, runs: Runs) -> tuple[Outcome, Answer, frozenset[str]]:
    """Ask, and judge the answer against the label: the outcome, the answer, and the documents it
    leads to (what the simulated user's vote follows). A curated answer replaces retrieval: it
    counts at rank 1 when the curated run cites the labelled document, as a miss otherwise."""
    from ragloop.answer import ask
    from lift_metrics import first_rank

    answer = ask(question.text, config_path=str(config_path), limit=TOP_K, user_id=f"asker-{question.question_id}")
    curated = getattr(answer, "curated", None)
    if curated:
        cited = runs.cited.get(curated["run_id"], frozenset())
        correct = question.expected_doc_id in cited
        outcome = Outcome(question.question_id, question.kind, 1 if correct else None, curated=True, curated_correct=correct)
        return outcome, answer, cited
    rank = first_rank(runs.hits(answer.sources), question.expected_doc_id)
    return Outcome(question.question_id, question.kind, rank), answer, runs.cited_by(answer)


def demoted_documents(store, documents: set[str]) -> list[str]:
    """Labelled documents (each answers some sampled question) with a chunk whose boost is below 0."""
    if ranking_support():
        return []
    report = store.boost_report(limit=1_000_000)
    return sorted({row["doc_id"] for row in report["demoted"] if row["doc_id"] in documents})


# --- one variant over the days ---------------------------------------------------------------------

def reset_index() -> int:
    """Every written-back answer deleted: each variant starts from the index as ingested."""
    from ragloop.index import connect, delete_documents, read_indexed_documents

    with connect() as client:
        qa = list(read_indexed_documents(client, COLLECTION, {"qa"}))
        if qa:
            delete_documents(client, COLLECTION, qa)
    return len(qa)


def grade_and_write_back(config_path: Path, label: str) -> dict:
    """The feedback DAG's task bodies, in its order (select -> grade each batch -> write back)."""
    from ragloop import grading
    from ragloop.staging import DagRunRef

    batches = grading.select_runs(str(config_path))
    graded = vetoed = 0
    started = time.monotonic()
    for batch in batches:
        tally = grading.grade_batch(batch, str(config_path))
        graded += tally["graded"]
        vetoed += tally["vetoed"]
    grade_seconds = time.monotonic() - started
    result = grading.write_back(DagRunRef(grading.GRADE_DAG_ID, label), str(config_path))
    return {"grade_seconds": round(grade_seconds, 1), "write_back_seconds": result["seconds"],"graded": graded, "vetoed": vetoed, "good_runs": result["good_runs"], "written": result["written"],
            "revoked": result["revoked"], "not_publishable": len(result["not_publishable"])}


def run_variant(chosen: Variant, days: list[Day], config_path: Path, work: Path, split: str) -> dict:
    from ragloop.runs import RunRecorder, RunStore, VoteIn

    removed = reset_index()
    database = work / f"runs-{split}-{chosen.name}.db"
    database.unlink(missing_ok=True)
    os.environ["AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT"] = json.dumps({"conn_type": "sqlite", "host": str(database)})
    runs = Runs()
    labelled = {q.expected_doc_id for day in days for q in day.questions}
    per_day = []
    started = time.monotonic()
    with RunStore(f"sqlite:///{database}") as store:
        for day in days:
            outcomes: list[Outcome] = []
            votes = {"up": 0, "down": 0}
            asked_at = time.monotonic()
            with RunRecorder(app="feedback-lift", store=store) as recorder:
                for question in day.questions:
                    outcome, answer, cited = ask_one(question, config_path, runs)
                    outcomes.append(outcome)
                    if not chosen.loop:
                        continue
                    if answer.run_id is None:
                        raise RagloopError(f"question {question.question_id} was answered but not recorded: "
                                           f"{recorder.last_error}")
                    runs.cited[answer.run_id] = cited
                    vote: Literal["up", "down"] = "up" if question.expected_doc_id in cited else "down"
                    votes[vote] += 1
                    store.add_vote(answer.run_id, VoteIn(vote=vote, user_id=f"asker-{question.question_id}"))
            if recorder.errors:
                raise RagloopError(f"{recorder.errors} runs were not recorded on day {day.number}: {recorder.last_error}")
            ask_seconds = time.monotonic() - asked_at
            loop = grade_and_write_back(config_path, f"lift-{split}-{chosen.name}-{day.number}") if chosen.loop else None
            demoted = demoted_documents(store, labelled) if chosen.loop else None
            per_day.append({"day": day.number, "outcomes": outcomes, "votes": votes if chosen.loop else None, "loop": loop,
                            "ask_seconds": round(ask_seconds, 1), "demoted_labelled_documents": demoted})
            log(f"  {split}/{chosen.name} day {day.number}: {len(outcomes)} questions, "
                f"recall@5 {summarise(outcomes)['all'][f'recall@{TOP_K}']}"
                + f" (asked in {ask_seconds:.0f} s)"
                + (f", votes {votes}, written {loop['written']} (graded in {loop['grade_seconds']:.0f} s, written back in "
                   f"{loop['write_back_seconds']:.0f} s)" if loop else ""))
    return {"variant": chosen.name, "config": chosen.config, "reset_removed_qa": removed, "days": per_day,
            "seconds": round(time.monotonic() - started, 1)}


# --- figures ---------------------------------------------------------------------------------------

def figures(result: dict, baseline: dict[str, int | None] | None) -> dict:
    """Per day and over every day after the first: the metrics, and harm against `none`."""
    days = []
    for day in result["days"]:
        row = {"day": day["day"], **summarise(day["outcomes"])}
        if baseline is not None:
            found = harm(baseline, day["outcomes"])
            row["harm"] = {"demoted": found.demoted, "lost_from_top5": found.lost, "promoted": found.promoted}
        row["votes"], row["loop"], row["ask_seconds"] = day["votes"], day["loop"], day["ask_seconds"]
        row["demoted_labelled_documents"] = day["demoted_labelled_documents"]
        days.append(row)
    later = [o for day in result["days"][1:] for o in day["outcomes"]]
    total = {**summarise(later)}
    if baseline is not None:
        found = harm(baseline, later)
        total["harm"] = {"demoted": found.demoted, "lost_from_top5": found.lost, "promoted": found.promoted,
                         "questions": found.demoted_ids[:50]}
    return {"variant": result["variant"], "config": result["config"], "days": days, "after_day_1": total,
            "seconds": result["seconds"]}


def markdown(results: dict) -> str:
    lines = [f"# Feedback lift ({results['date']}, commit {results['commit'][:10]})", "",
             f"Data: {results['inputs']['public']['repository']} `{results['inputs']['public']['path']}` "
             f"at {str(results['inputs']['public']['commit'])[:10]}; {results['inputs']['threads_per_split']} threads "
             f"per split, {results['inputs']['days']} cohorts, recall@{TOP_K} and MRR@{TOP_K}. "
             f"Machine: {results['machine']['note']}.", ""]
    for split, block in results["splits"].items():
        lines += [f"## {split} split", "",
                  "| variant | day | questions | recall@5 all | MRR all | recall@5 repeat | MRR repeat | recall@5 first "
                  "| MRR first | curated share | wrong curated | promoted vs none | demoted vs none | lost vs none "
                  "| labelled docs with boost < 0 | written back |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for entry in block["variants"]:
            if "unavailable" in entry:
                lines.append(f"| {entry['variant']} | - | not run: {entry['unavailable']} |" + " |" * 13)
                continue
            rows = [*entry["days"], {"day": "after day 1", **entry["after_day_1"]}]
            label = entry["variant"] + "".join(f" ({k} {v})" for k, v in entry["config"].items())
            for row in rows:
                a, r, f = row["all"], row["repeat"], row["first"]
                h = row.get("harm") or {}
                written = (row.get("loop") or {}).get("written", "")

                def cell(value) -> str:
                    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

                lines.append(
                    f"| {label} | {row['day']} | {a['questions']} | {cell(a['recall@5'])} | {cell(a['mrr'])} | "
                    f"{cell(r['recall@5'])} | {cell(r['mrr'])} | {cell(f['recall@5'])} | {cell(f['mrr'])} | "
                    f"{cell(a['curated_share'])} | {a['wrong_curated_hits']} | {cell(h.get('promoted'))} | "
                    f"{cell(h.get('demoted'))} | {cell(h.get('lost_from_top5'))} | "
                    f"{cell(len(row['demoted_labelled_documents']) if row.get('demoted_labelled_documents') is not None else None)} "
                    f"| {written} |")
        lines.append("")
    for split, block in results["splits"].items():
        drift = block.get("baseline_drift")
        if drift:
            lines.append(f"Drift ({split}): `none` asked again after every variant: {drift['rank_changed']} of "
                         f"{drift['questions']} ranks changed (a floor under the differences above).")
    lines += ["", f"Chosen on tune: {json.dumps(results['chosen_on_tune'])} ({results['selection_rule']}).", "",
              f"Verdict on report: {results['verdict']}", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    block = results["splits"].get("report")
    if not block:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for entry in block["variants"]:
        if "unavailable" in entry:
            continue
        days = [row["day"] for row in entry["days"]]
        axes[0].plot(days, [row["repeat"]["recall@5"] for row in entry["days"]], marker="o", label=entry["variant"])
        axes[1].plot(days, [row["all"]["mrr"] for row in entry["days"]], marker="o", label=entry["variant"])
    axes[0].set_title("report split: recall@5 of repeated questions")
    axes[1].set_title("report split: MRR@5, all questions")
    for axis in axes:
        axis.set_xlabel("day")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def verdict(block: dict) -> str:
    by_name = {e["variant"]: e for e in block["variants"] if "unavailable" not in e}
    none = by_name.get("none")
    if not none:
        return "no baseline"
    parts = []
    base = none["after_day_1"]
    for name, entry in by_name.items():
        if name == "none":
            continue
        mine = entry["after_day_1"]
        lift_repeat = (mine["repeat"]["mrr"] or 0) - (base["repeat"]["mrr"] or 0)
        lift_all = (mine["all"]["mrr"] or 0) - (base["all"]["mrr"] or 0)
        harm_first = (mine["first"]["mrr"] or 0) - (base["first"]["mrr"] or 0)
        parts.append(f"{name}: MRR@5 after day 1 {base['all']['mrr']} -> {mine['all']['mrr']} ({lift_all:+.3f}); "
                     f"repeated questions {base['repeat']['mrr']} -> {mine['repeat']['mrr']} ({lift_repeat:+.3f}); "
                     f"new questions {harm_first:+.3f}; questions ranked higher {mine['harm']['promoted']}, lower "
                     f"{mine['harm']['demoted']} (lost from the top 5: {mine['harm']['lost_from_top5']}); curated share "
                     f"{mine['all']['curated_share']}, wrong curated hits {mine['all']['wrong_curated_hits']}"
                     f" -> {'lifts' if lift_all > 0 else 'does not lift'} the report set")
    missing = [e["variant"] for e in block["variants"] if "unavailable" in e]
    if missing:
        parts.append(f"not run: {', '.join(missing)} ({RANKING_BRANCH})")
    return "; ".join(parts)


# --- main ------------------------------------------------------------------------------------------

def write_config(work: Path, corpus: Path, extra: dict, name: str = "plain") -> Path:
    import yaml

    base = yaml.safe_load((REPO / "include" / "sources.yaml").read_text())
    config = {"collection": COLLECTION, "embedder": "local", "chunking": base["chunking"],
              "staging": f"file://{work / 'staging'}",
              "sources": [{"id": "so", "type": "docs", "path": str(corpus), "include": ["*.md"],
                           "url_template": "https://stackoverflow.com/questions/{path}"}], **extra}
    path = work / f"lift-{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_split(split: str, days: list[Day], names: list[str], shares: list[float], corpus: Path, work: Path,
              baseline: dict[str, int | None] | None = None) -> dict:
    """Each variant over the days. The writeback variant runs once per written_back_share in
    `shares` (on tune: the candidates; on report: the one chosen on tune). `baseline`: the ranks
    of `none`, when it ran before (harm is measured against it)."""
    entries: list[dict] = []
    for name in names:
        for share in shares if name == "writeback" else shares[:1]:
            try:
                chosen = variant(name, share)
            except VariantUnavailable as err:
                log(f"  {split}/{name}: {err}")
                entries.append({"variant": name, "unavailable": str(err)})
                continue
            config_path = write_config(work, corpus, chosen.config, f"{split}-{name}-{share}")
            result = run_variant(chosen, days, config_path, work, split)
            if name == "none":
                baseline = {o.question_id: o.rank for day in result["days"] for o in day["outcomes"]}
            entries.append(figures(result, baseline if name != "none" else None))
    return {"questions": sum(len(d.questions) for d in days), "variants": entries, "baseline": baseline}


def choose_share(block: dict, shares: list[float]) -> tuple[float, dict]:
    """The written_back_share with the best MRR@5 over days 2.. on this (tune) block; ties: the smaller."""
    scores = {e["config"]["written_back_share"]: e["after_day_1"]["all"]["mrr"] or 0.0
              for e in block["variants"] if e["variant"] == "writeback" and "unavailable" not in e}
    if not scores:
        return shares[0], {}
    best = max(sorted(scores), key=lambda s: scores[s])
    return best, {str(s): v for s, v in scores.items()}


def main(argv: list[str] | None = None) -> int:
    import public_questions
    from bench_env import add_common_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public", type=Path, default=public_questions.DEFAULT_MIRROR,
                        help="a clone or mirror of astronomer/ask-astro")
    parser.add_argument("--threads", type=int, default=40, help="threads sampled per split")
    parser.add_argument("--days", type=int, default=4, help="cohorts of first questions (days: one more)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--splits", default="tune,report")
    parser.add_argument("--written-back-shares", default="0.2,0.4",
                        help="written_back_share values tried on tune for the writeback variant (best MRR after day 1)")
    parser.add_argument("--distractors", type=int, default=-1,
                        help="index only the sampled threads and this many others (-1: every thread; smoke runs)")
    parser.add_argument("--note", default="",
                        help="what else ran on the machine")
    add_common_arguments(parser, BENCH / "results")
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if "none" in names:
        names = ["none", *[n for n in names if n != "none"]]  # the baseline first: harm is measured against it

    threads = public_questions.load_threads(args.public)
    provenance = public_questions.provenance(args.public)
    started = time.monotonic()
    shares = [float(s) for s in args.written_back_shares.split(",")]
    results: dict = {"benchmark": "feedback-lift", "splits": {}}
    with bench_environment("ragloop-bench-lift-", args.use_connection, log) as work:
        from ragloop.embedding import make_embedder
        from ragloop.index import connect, drop_collection
        from ragloop.ingest import ingest

        splits = [s for s in ("tune", "report") if s in args.splits.split(",")]  # tune first: it chooses
        sampled = {split: sample_threads(threads, split, args.threads) for split in splits}
        indexed = threads
        if args.distractors >= 0:
            keep = {t.thread_id for chosen in sampled.values() for t in chosen}
            others = [t for t in threads if t.thread_id not in keep][: args.distractors]
            indexed = [t for t in threads if t.thread_id in keep] + others
        corpus = work / "stackoverflow"
        write_corpus(indexed, corpus)
        plain = write_config(work, corpus, {})
        with connect() as client:
            drop_collection(client, COLLECTION)
        log(f"Ingesting {len(indexed)} threads' answers into {COLLECTION}...")
        ingest_started = time.monotonic()
        ingest("bench-feedback-lift", str(plain), source_type="docs", embedder=make_embedder("local"))
        ingest_seconds = time.monotonic() - ingest_started
        log(f"  ingested in {ingest_seconds:.0f} s")

        chosen_share, tuning = shares[0], dict[str, float]()
        for split in splits:
            days = schedule(sampled[split], args.days)
            log(f"{split}: {sum(len(d.questions) for d in days)} questions over {len(days)} days")
            if split == "tune":
                # The writeback variant at each candidate share first; the others at the chosen one.
                early = [n for n in names if n in ("none", "writeback")]
                block = run_split(split, days, early, shares, corpus, work)
                chosen_share, tuning = choose_share(block, shares)
                log(f"tune: written_back_share {chosen_share} chosen ({tuning})")
                later = run_split(split, days, [n for n in names if n not in early], [chosen_share], corpus, work,
                                  block["baseline"])
                block["variants"] += later["variants"]
            else:
                block = run_split(split, days, names, [chosen_share], corpus, work)
            baseline = block.pop("baseline")
            if baseline is not None:
                # The same questions without feedback once more, after every variant's written-back
                # answers were deleted: ranks that moved are drift of the index itself (deleted
                # objects in BM25 statistics, search ties), a floor under any difference above.
                again = run_variant(variant("none", chosen_share), days, write_config(work, corpus, {}, f"{split}-again"),
                                    work, split)
                moved = [o.question_id for d in again["days"] for o in d["outcomes"] if o.rank != baseline[o.question_id]]
                block["baseline_drift"] = {"questions": len(baseline), "rank_changed": len(moved), "which": moved[:50]}
                log(f"{split}: none asked again after the variants: {len(moved)} of {len(baseline)} ranks changed")
            block["threads"] = sorted({q.thread_id for d in days for q in d.questions})
            results["splits"][split] = block
        with connect() as client:
            drop_collection(client, COLLECTION)

    date = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    results.update({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "note": args.note},
        "command": "python bench/feedback_lift.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "inputs": {"public": provenance, "threads_per_split": args.threads, "days": args.days,
                   "documents": f"threads' answers ({len(indexed)} of {len(threads)} documents; title and question left out)",
                   "first_question": "the thread's title", "repeat_question": "the thread's question body, prose only, "
                   "about 60 words, asked the day after the title", "expected": doc_id_of(0).replace("0", "<thread id>"),
                   "votes": "up when the answer quotes the expected document (or a written-back answer citing it), else down",
                   "judge": "offline (local model); grading and write-back by the feedback DAG's task bodies"},
        "selection_rule": "writeback: the written_back_share with the best tune MRR@5 over days 2.. (ties: the smaller)",
        "tuning": tuning,
        "chosen_on_tune": {"written_back_share": chosen_share},
        "ingest_seconds": round(ingest_seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
    })
    results["verdict"] = verdict(results["splits"]["report"]) if "report" in results["splits"] else "report split not run"
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"feedback-lift-{date}.json"
    json_path.write_text(json.dumps(results, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)))
    table = markdown(results)
    (args.out / f"feedback-lift-{date}.md").write_text(table)
    plotted = plot(results, args.out / f"feedback-lift-{date}.png")
    print(table)
    print(json.dumps({"verdict": results["verdict"], "chosen_on_tune": results["chosen_on_tune"], "results": str(json_path),
                      "plot": plotted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
