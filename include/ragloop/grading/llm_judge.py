"""The LLM judge: each criterion's prompt template through the configured chat model, with the
question, answer, sources and votes as escaped, delimited data; the verdict it returns is
validated, and a malformed reply is asked again a bounded number of times."""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
from collections.abc import Sequence

from ragloop.answer import format_sources
from ragloop.passages import Citation
from ragloop.chat import ChatError, ChatModel, ChatTimeout
from ragloop.grading.checks import REFUSAL
from ragloop.grading.judge import JudgeUsage
from ragloop.grading.verdicts import JudgeKind, CRITERIA, JudgeFailed, Verdict, parse_verdict
from ragloop.prompts import escape_data, load_prompt
from ragloop.runs import latest_votes

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun

log = logging.getLogger(__name__)

MALFORMED_RETRIES = 2  # a verdict that does not parse is asked for again this many times


def votes_text(run: QaRun) -> str:
    """The users' votes as the helpfulness judge reads them: each user's latest, with comments."""
    latest = latest_votes(run.get("votes") or [])
    if not latest:
        return "none yet"
    summary = run["vote_summary"]
    lines = [f"{summary['up']} up, {summary['down']} down"]
    for vote in latest.values():
        comment = " ".join((vote.get("comment") or "").split())
        lines.append(f"- {vote['vote']}" + (f": {comment[:500]}" if comment else ""))
    return "\n".join(lines)


def source_blocks(run: QaRun) -> str:
    """The run's sources as delimited data, numbered as the answer cites them."""
    return format_sources([Citation.from_record(n, s) for n, s in enumerate(run.get("sources") or [], 1)])


def reply_problem(text: str, finish_reason: str, parse_error: str) -> str:
    """Why a reply gave no verdict (one of judge.REPLY_PROBLEMS), from the reply itself: cut at the
    token limit, a refusal in its first words, JSON of the wrong shape, or not JSON at all."""
    if finish_reason == "length":
        return "too_long"
    first = " ".join(text.split())[:200]
    if REFUSAL.search(first.lstrip("\"'`*# ")):
        return "refusal"
    if parse_error.startswith(("not JSON", "not a JSON object")):
        return "malformed_json"
    return "invalid_verdict"


class LLMJudge:
    """Each criterion's template through the configured chat model; verdicts validated."""

    def __init__(self, chat: ChatModel, product: str, owns_chat: bool = True):
        self.chat = chat
        self.product = product
        self.owns_chat = owns_chat  # a chat model passed in (the tests' wire server) is its owner's to close
        self.usage = JudgeUsage()

    @property
    def name(self) -> str:
        return JudgeKind.LLM.named(self.chat.model_for(load_prompt(CRITERIA[0])))

    @staticmethod
    def version(criterion: str) -> str:
        return load_prompt(criterion).version

    def prepare(self, work: Sequence[tuple[QaRun, Sequence[str]]]) -> None:
        """Nothing to do ahead: each criterion is one request of its own."""

    def close(self) -> None:
        if self.owns_chat:
            self.chat.close()

    def grade(self, run: QaRun, criteria: list[str]) -> list[Verdict]:
        available = {
            "product": self.product,
            "question": escape_data(run["question"]),
            "answer": escape_data(run["answer"]),
            "sources": source_blocks(run),
            "votes": escape_data(votes_text(run)),
        }
        verdicts = []
        for criterion in criteria:
            template = load_prompt(criterion)
            variables = {name: available[name] for name in template.legend}
            follow_up: list[dict[str, str]] = []
            tokens = [0, 0]
            problem = ""
            for attempt in range(MALFORMED_RETRIES + 1):
                try:
                    reply = self.chat.complete(template, extra_messages=follow_up, **variables)
                except ChatError as err:
                    self.usage.calls += 1
                    self.usage.count_problem("timeout" if isinstance(err, ChatTimeout) else "api_error")
                    raise JudgeFailed(f"run {run['run_id']}, {template.label}: {err}") from None
                self.usage.calls += 1
                self.usage.prompt_tokens += reply.prompt_tokens
                self.usage.completion_tokens += reply.completion_tokens
                tokens[0] += reply.prompt_tokens
                tokens[1] += reply.completion_tokens
                try:
                    parsed = parse_verdict(reply.text)
                    self.usage.usable += 1
                    break
                except ValueError as err:
                    kind = reply_problem(reply.text, reply.finish_reason, str(err))
                    problem = f"{kind}: {err}; the reply began {reply.text.strip()[:120]!r}"
                    self.usage.malformed += 1
                    self.usage.count_problem(kind)
                    log.warning(
                        "Run %s, %s: no verdict in the reply (attempt %d of %d): %s",
                        run["run_id"],
                        template.label,
                        attempt + 1,
                        MALFORMED_RETRIES + 1,
                        problem,
                    )
                    follow_up = [
                        {"role": "assistant", "content": reply.text[:2000]},
                        {
                            "role": "user",
                            "content": f"That reply is not a valid verdict ({problem}). Reply with exactly one "
                            'JSON object: {"score": <number from 0 to 1>, "reason": "<text>"}.',
                        },
                    ]
            else:
                raise JudgeFailed(
                    f"run {run['run_id']}, {template.label}: no valid verdict after {MALFORMED_RETRIES + 1} replies (last: {problem})"
                )
            verdicts.append(
                Verdict(
                    criterion=criterion,
                    version=template.version,
                    judge=JudgeKind.LLM.named(reply.model),
                    score=round(parsed.score, 4),
                    passed=parsed.score >= (template.threshold if template.threshold is not None else 0.5),
                    reason=parsed.reason.strip(),
                    prompt_tokens=tokens[0],
                    completion_tokens=tokens[1],
                )
            )
        return verdicts
