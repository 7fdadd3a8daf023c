"""What the grading tasks hand each other and return to the CLI. TypedDicts, not classes: they
cross task boundaries as XCom (JSON), and the feedback report is stored as it is."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# "pass" is a Python keyword, hence the functional form.
VerdictCounts = TypedDict("VerdictCounts", {"pass": int, "fail": int, "undecided": int})


class JudgeTokens(TypedDict):
    prompt: int
    completion: int


class UngradedRun(TypedDict):
    qa_run_id: str
    reason: str


class ParkedRun(TypedDict):
    """A run that failed to grade MAX_GRADING_FAILURES times: not selected again."""

    qa_run_id: str
    failures: int
    reason: str


class GradeTally(TypedDict):
    """One grade batch's counts (a grade task's XCom), or all batches summed."""

    runs: int
    graded: int
    ungraded: int
    vetoed: int
    reused: int  # verdicts reused from an earlier grade under the same criterion version
    verdicts: dict[str, VerdictCounts]  # per criterion
    vetoes: dict[str, int]  # per reason
    ungraded_runs: list[UngradedRun]
    parked_runs: list[ParkedRun]
    judge: str
    judge_calls: int
    malformed_replies: int
    judge_problems: NotRequired[dict[str, int]]  # replies / calls that gave no verdict, by kind (judge.REPLY_PROBLEMS)
    judge_tokens: JudgeTokens
    seconds: float


class WritebackResult(TypedDict):
    """The write-back task's result: what was published, refused and revoked."""

    collection: str
    good_runs: int
    not_publishable: list[UngradedRun]  # passed grading, refused by the checks at publication
    written: int
    rewritten: int
    unchanged: int
    revoked: int
    revocations: list[UngradedRun]
    awaiting_review: NotRequired[list[UngradedRun]]  # good, held for a person's approval (config `review:`)
    chunks: dict[str, int]  # embedded, reused, written, deleted
    embedding_tokens: int
    seconds: float


class ReviewRequest(TypedDict):
    """One answer proposed for review: the HITL operator's arguments (a mapped task each)."""

    qa_run_id: str
    config_path: str
    weaviate_conn_id: str
    subject: str
    body: str  # markdown: question, answer, cited passages, grades, votes


class ReviewDecision(TypedDict):
    """What a review task returns (its XCom): the decision recorded, or "held" (no answer in time)."""

    qa_run_id: str
    decision: str  # approved | rejected | held
    reviewer: str
    reason: str


class GradeReport(TypedDict):
    """The feedback DAG run's report (`ragloop grade` prints it; the run store keeps it)."""

    dag_id: str
    dag_run_id: str
    runs_store: str
    weaviate: str
    collection: str
    judge: str
    selected: int
    graded: int
    ungraded: int
    vetoed: int
    reused_verdicts: int
    verdicts: dict[str, VerdictCounts]
    vetoes: dict[str, int]
    ungraded_runs: list[UngradedRun]
    parked_runs: list[ParkedRun]
    judge_calls: int
    malformed_replies: int
    judge_problems: NotRequired[dict[str, int]]  # by kind: malformed_json, invalid_verdict, refusal, too_long, timeout, api_error
    judge_tokens: JudgeTokens
    estimated_cost_usd: float | None
    write_back: WritebackResult | dict[str, Any]  # {} when write-back did not finish
    seconds: dict[str, float | None]  # grade, write_back
    errors: list[str]
    report_stored: NotRequired[str]  # "stored in the run store", or "not stored: <why>"
