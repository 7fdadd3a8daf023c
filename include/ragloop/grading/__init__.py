"""Grading recorded Q&A runs, and writing the good answers back into the knowledge base.

1. Deterministic checks run first and can veto a run: secrets (API key shapes, private keys,
   passwords in URLs), personal data (emails, phone numbers, card numbers), empty or refusal
   answers, answers that cite no source, and text that tries to instruct its grader.
2. The criteria (`prompts/relevance.yaml`, `groundedness`, `helpfulness`, `publicness`) are graded
   by a judge. With `llm:` configured, the LLM judge sends each criterion's template with the
   question, answer, sources and votes as escaped, delimited data and validates the verdict it
   returns (score 0–1 and a reason); a malformed reply is asked again a bounded number of times,
   then the run stays ungraded. Without one, the offline judge measures relevance and
   groundedness with the local embedding model and reads helpfulness from the users' votes.
3. A run is good when its latest grade of every criterion passed at the criterion's current
   version, no check vetoed it, and no user's latest vote is down. Good runs become Documents of
   kind `qa` and go through the same staging → plan → index → prune path as every source; the
   listing of good runs is complete, so a run that stops being good is pruned: that is revocation.

The task bodies of the feedback DAG (`dags/grade_feedback.py`) are `select_runs`, `grade_batch`,
`write_back` and `grade_report`; `ragloop grade` runs that DAG through `dag.test()`.

Modules: `verdicts` (criteria, Verdict, the judge's reply), `checks` (the deterministic vetoes and
how an answer is read), `judge` (the `Judge` protocol), `offline_judge` (its reference
implementation), `llm_judge`, `choice` (which judge the config selects), `tasks` (selecting,
planning and grading batches), `writeback` (write-back and revocation), `report`. This module
re-exports what the DAG, the CLI, the bench and the tests use.
"""

from ragloop.catalog import GRADE_DAG_ID
from ragloop.grading.checks import (
    Veto,
    answer_body,
    cited_numbers,
    claim_sentences,
    run_checks,
)
from ragloop.grading.choice import configured_judge_name, criterion_versions, make_judge
from ragloop.grading.judge import Judge, JudgeUsage
from ragloop.grading.llm_judge import MALFORMED_RETRIES, LLMJudge, source_blocks, votes_text
from ragloop.grading.offline_judge import (
    GROUNDED_THRESHOLD,
    LABELLED_AGREEMENT,
    OFFLINE_VERSIONS,
    RELEVANCE_THRESHOLD,
    SUPPORT_THRESHOLD,
    OfflineJudge,
)
from ragloop.grading.report import PRICES_PER_MILLION, check_complete, estimated_cost, format_grade_report, grade_report
from ragloop.grading.tasks import (
    DEFAULT_BATCH_RUNS,
    DEFAULT_RUN_LIMIT,
    MAX_GRADE_BATCHES,
    RunGrading,
    criteria_to_grade,
    grade_batch,
    is_current,
    plan_grading,
    select_runs,
)
from ragloop.grading.verdicts import (
    CHECKS,
    CHECKS_JUDGE,
    CHECKS_VERSION,
    CRITERIA,
    VOTE_CRITERIA,
    GradingError,
    JudgeFailed,
    JudgeReply,
    Verdict,
    parse_verdict,
)
from ragloop.grading.writeback import (
    grader_versions,
    list_written_back,
    qa_document,
    revoke_by_hand,
    why_not_good,
    write_back,
)

__all__ = [
    "CHECKS",
    "CHECKS_JUDGE",
    "CHECKS_VERSION",
    "CRITERIA",
    "DEFAULT_BATCH_RUNS",
    "DEFAULT_RUN_LIMIT",
    "GRADE_DAG_ID",
    "GROUNDED_THRESHOLD",
    "LABELLED_AGREEMENT",
    "MALFORMED_RETRIES",
    "MAX_GRADE_BATCHES",
    "OFFLINE_VERSIONS",
    "PRICES_PER_MILLION",
    "RELEVANCE_THRESHOLD",
    "SUPPORT_THRESHOLD",
    "VOTE_CRITERIA",
    "GradingError",
    "Judge",
    "JudgeFailed",
    "JudgeReply",
    "JudgeUsage",
    "LLMJudge",
    "OfflineJudge",
    "RunGrading",
    "Verdict",
    "Veto",
    "answer_body",
    "check_complete",
    "cited_numbers",
    "claim_sentences",
    "configured_judge_name",
    "criteria_to_grade",
    "criterion_versions",
    "estimated_cost",
    "format_grade_report",
    "grade_batch",
    "grade_report",
    "grader_versions",
    "is_current",
    "list_written_back",
    "make_judge",
    "parse_verdict",
    "plan_grading",
    "qa_document",
    "revoke_by_hand",
    "run_checks",
    "select_runs",
    "source_blocks",
    "votes_text",
    "why_not_good",
    "write_back",
]
