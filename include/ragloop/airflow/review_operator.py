"""The feedback DAG's review task: the standard provider's HITLOperator asking a person to approve
or reject one answer before it is written back (Airflow's Required Actions view, or the REST API's
hitlDetails endpoint), then recording the decision in the run store (ragloop.grading.review).

Options are ApprovalOperator's ("Approve", "Reject") with a free-text reason in the form. It is a
HITLOperator rather than an ApprovalOperator because a rejection must not skip the tasks after it:
write-back still runs for the other answers, and the rejection is recorded as a revocation."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param

# ApprovalOperator's words (ragloop.grading.review checks the same two); ragloop.grading is not
# imported here, so a DAG file using this operator parses without loading the index client.
APPROVE, REJECT = ApprovalOperator.APPROVE, ApprovalOperator.REJECT


def reason_form() -> dict[str, Param]:
    """The form under the two buttons: an optional reason, recorded with the decision."""
    return {"reason": Param("", type="string", description="Why (recorded with the decision; shown on a rejected answer)")}


class ReviewAnswerOperator(HITLOperator):
    """Ask a person to approve or reject one answer (a `ReviewRequest`); record what they chose.

    No answer within `response_timeout`: the answer is held (nothing recorded) and proposed again
    by the next feedback run; the task succeeds, so write-back goes on for the rest."""

    # The subject and body hold user text (questions, answers, passages): never render them as
    # Jinja templates, where "{{ ... }}" in an answer would be evaluated.
    template_fields = ()

    def __init__(self, *, qa_run_id: str, config_path: str | None, weaviate_conn_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("params", reason_form())
        super().__init__(options=[APPROVE, REJECT], multiple=False, **kwargs)
        self.qa_run_id = qa_run_id
        self.config_path = config_path
        self.weaviate_conn_id = weaviate_conn_id

    def execute(self, context: Any) -> Any:
        # A later try of this task (Airflow retried it) asks nobody again when an earlier try
        # already recorded the person's decision: that decision stands.
        if int(getattr(context.get("ti"), "try_number", 1) or 1) > 1:
            from ragloop.grading.review import recorded_decision

            decided = recorded_decision(self.qa_run_id, self.config_path, self.weaviate_conn_id)
            if decided is not None:
                self.log.info(
                    "Run %s was %s by %s in an earlier try: not asked again",
                    self.qa_run_id,
                    decided["decision"],
                    decided["reviewer"],
                )
                return decided
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("error_type") == "timeout":
            self.log.warning("No decision on run %s in time: it is held and proposed again next run", self.qa_run_id)
            return {"qa_run_id": self.qa_run_id, "decision": "held", "reviewer": "", "reason": "no decision in time"}
        payload = super().execute_complete(context, event)
        from ragloop.grading.review import record_review

        user = payload.get("responded_by_user") or {}
        reviewer = str(user.get("name") or user.get("id") or "unknown")
        reason = str((payload.get("params_input") or {}).get("reason") or "")
        return record_review(
            self.qa_run_id, payload["chosen_options"][0], reviewer, reason, self.config_path, self.weaviate_conn_id
        )
