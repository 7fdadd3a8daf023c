"""What a grade is: the criteria, a verdict and the reply a judge must give, the grading errors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragloop.errors import RagloopError

CRITERIA = ("relevance", "groundedness", "helpfulness", "publicness")
# Criteria whose verdict reads the users' votes: graded again whenever a vote arrives.
VOTE_CRITERIA = frozenset({"helpfulness"})


class JudgeKind(StrEnum):
    """What a judge's name starts with ("llm:gpt-4o-mini", "offline:votes"): a grade holds for a
    later run only when given by the same kind of judge."""

    LLM = "llm"
    OFFLINE = "offline"

    def named(self, what: str) -> str:
        return f"{self.value}:{what}"


CHECKS = "checks"
# Bump on every change of the checks (2: every published field, normalised, detect-secrets,
# sources from the index; 3: gitleaks, decoded variants, validators, and every unit of the answer
# grounded in its cited sources).
CHECKS_VERSION = "3"
CHECKS_JUDGE = "deterministic"


class GradingError(RagloopError):
    pass


class JudgeFailed(GradingError):
    """The judge gave no valid verdict (malformed replies after the retries, or the API failed
    after the client's retries): the run stays ungraded this time."""


@dataclass
class Verdict:
    criterion: str
    version: str
    judge: str
    score: float | None
    passed: bool | None  # None: no evidence either way (offline helpfulness without votes)
    reason: str
    veto: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def label(self) -> str:
        return f"{self.criterion}@{self.version}"

    def row(self) -> dict:
        """The grade row the run store keeps."""
        return {
            "criterion": self.criterion,
            "criterion_version": self.version,
            "judge": self.judge,
            "score": self.score,
            "passed": self.passed,
            "reason": self.reason[:4000],
            "veto": self.veto,
            "tokens": self.prompt_tokens + self.completion_tokens,
        }


class JudgeReply(BaseModel):
    """The verdict a judge must return for one criterion."""

    model_config = ConfigDict(strict=True, extra="ignore")
    score: float = Field(ge=0.0, le=1.0)
    reason: str = Field(min_length=1, max_length=2000)


def parse_verdict(text: str) -> JudgeReply:
    """The reply as a verdict; ValueError saying what is wrong otherwise. A JSON object wrapped in
    a code fence is accepted; anything else around it is not."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        return JudgeReply.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in err.errors(include_url=False))
        raise ValueError(problems) from None
