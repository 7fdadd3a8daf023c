"""The shape of a run, shared by the recorder, the HTTP API and `runs import`: what is accepted
(pydantic models, validated), the write-back states, and how votes count."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias, TypedDict

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ragloop.passages import Passage


class WritebackState(StrEnum):
    """Where a run's written-back answer stands (stored as its value)."""

    WRITTEN = "written"  # in the index
    REVOKED = "revoked"  # removed by the feedback DAG (down vote, or no longer passes)
    REVOKED_BY_HAND = "revoked_by_hand"  # removed with `ragloop qa revoke`; never written back again on its own


WRITEBACK_STATES = tuple(state.value for state in WritebackState)


def writeback_state(run: Mapping[str, Any]) -> WritebackState | None:
    """The state of a run's write-back record (a run as the store returns it), None if it has none."""
    record = run.get("writeback")
    return WritebackState(record["state"]) if record else None


# Tab, newline and carriage return are text; every other control character is refused: they hide
# content from people reading runs and break terminals and CSV exports.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    match = CONTROL_CHARACTERS.search(value)
    if match:
        raise ValueError(f"contains the control character {match.group()!r} at position {match.start()}")
    return value


# Bounded text fields (max_length; NonEmpty: at least one character), no control characters.
# Spelled out as aliases, not built by a function, so that mypy reads them as types.
Text100: TypeAlias = Annotated[str, StringConstraints(max_length=100), AfterValidator(_no_control_characters)]
Text100NonEmpty: TypeAlias = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(_no_control_characters)
]
Text1000: TypeAlias = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_control_characters)]
Text100000: TypeAlias = Annotated[str, StringConstraints(max_length=100_000), AfterValidator(_no_control_characters)]
Text20: TypeAlias = Annotated[str, StringConstraints(max_length=20), AfterValidator(_no_control_characters)]
Text200: TypeAlias = Annotated[str, StringConstraints(max_length=200), AfterValidator(_no_control_characters)]
Text2000: TypeAlias = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_control_characters)]
Text2000NonEmpty: TypeAlias = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_no_control_characters)
]
Text20000NonEmpty: TypeAlias = Annotated[
    str, StringConstraints(min_length=1, max_length=20_000), AfterValidator(_no_control_characters)
]
Text4000: TypeAlias = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_control_characters)]
Text50: TypeAlias = Annotated[str, StringConstraints(max_length=50), AfterValidator(_no_control_characters)]
Text50000: TypeAlias = Annotated[str, StringConstraints(max_length=50_000), AfterValidator(_no_control_characters)]


# Free-form JSON (a run's metadata) is bounded at the door: deep nesting broke every later read of
# the run list (GET /runs answered 500 for everyone), and nothing we show needs more than this.
MAX_JSON_DEPTH = 10
MAX_JSON_NODES = 2_000
MAX_JSON_STRING = 10_000


def _bounded_json(value: Any) -> Any:
    """Walks the value without recursion (a crafted depth must not exhaust the stack) and refuses
    one nested deeper than MAX_JSON_DEPTH, with more than MAX_JSON_NODES values, or holding a
    string or key longer than MAX_JSON_STRING."""
    stack, nodes = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise ValueError(f"holds more than {MAX_JSON_NODES} values")
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
            for key, child in item.items():
                if len(str(key)) > MAX_JSON_STRING:
                    raise ValueError(f"has a key longer than {MAX_JSON_STRING} characters")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and len(item) > MAX_JSON_STRING:
            raise ValueError(f"has a string longer than {MAX_JSON_STRING} characters")
    return value


BoundedJson = Annotated[dict[str, Any], AfterValidator(_bounded_json)]

RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class RetrievedSource(BaseModel):
    """One retrieved passage as the answer saw it."""

    model_config = ConfigDict(extra="forbid")
    doc_id: Text2000NonEmpty
    chunk_id: Text100 = ""
    url: Text2000 = ""
    title: Text1000 = ""
    kind: Text20 = ""
    score: float | None = None
    text: Text50000 = ""
    # The chunk's visibility as the index said when the answer retrieved it; "" when the app
    # did not say (the runs API then treats the run as internal: see runs_api).
    visibility: Literal["public", "internal", ""] = ""

    @classmethod
    def from_passage(cls, passage: Passage) -> RetrievedSource:
        """A passage the answer retrieved, as the run records it (its text as the answer saw it)."""
        return cls(
            doc_id=passage.doc_id,
            chunk_id=passage.chunk_id,
            url=passage.url,
            title=passage.title,
            kind=passage.kind,
            score=passage.score,
            text=passage.text,
            visibility=passage.visibility,  # type: ignore[arg-type]  # "public" or "internal" from the index
        )


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vote: Literal["up", "down"]
    user_id: Text200 = ""
    comment: Text4000 | None = None
    created_at: datetime | None = None


class RunIn(BaseModel):
    """A run as recorded by `ask`, posted to the API, or read from an import file."""

    model_config = ConfigDict(extra="forbid")
    run_id: RunId | None = None
    question: Text20000NonEmpty
    rewrites: list[Text2000] = Field(default_factory=list, max_length=20)
    sources: list[RetrievedSource] = Field(default_factory=list, max_length=100)
    answer: Text100000 = ""
    model: Text200 = ""
    prompt_name: Text100 = ""
    prompt_version: Text50 = ""
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    # "api": the model's own usage figures; "tiktoken": counted here; "none": no model was called.
    token_source: Literal["api", "tiktoken", "none", ""] = ""
    latency_ms: float | None = Field(default=None, ge=0)
    app: Text100NonEmpty | None = None  # None: the recorder's app, or "api" when posted to the API
    user_id: Text200 | None = None
    created_at: datetime | None = None
    metadata: BoundedJson = Field(default_factory=dict)
    votes: list[VoteIn] = Field(default_factory=list, max_length=1000)


def field_errors(err: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as [{field, message}], the field as a dotted path ("sources.2.doc_id")."""
    return [
        {"field": ".".join(str(part) for part in e["loc"]) or "(body)", "message": e["msg"]}
        for e in err.errors(include_url=False)
    ]


def voter(vote: Mapping[str, Any]) -> str:
    """Who a vote counts for. A vote without a user id (the CLI without --user, an imported vote)
    is its own voter: five anonymous down votes are five, never one."""
    return vote["user_id"] or f"anonymous#{vote.get('vote_id', id(vote))}"


def latest_votes(votes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """voter -> that voter's latest vote: the one that counts. Votes come oldest first, in the
    order the store recorded them."""
    return {voter(vote): vote for vote in votes}


def summarize_votes(votes: Sequence[Mapping[str, Any]]) -> dict:
    """The latest vote of each user counts: {up, down, votes}. Votes come oldest first."""
    counted = [vote["vote"] for vote in latest_votes(votes).values()]
    return {"up": counted.count("up"), "down": counted.count("down"), "votes": len(votes)}


# --- The read model: a Q&A run as the store returns it (RunStore.get_run, list_runs, get_runs) ---
# JSON-ready (times as ISO strings), so the runs API returns it as it is. A Q&A run is not a DAG
# run: a DAG run is named by ragloop.staging.DagRunRef.


class StoredVote(TypedDict):
    """One vote on a run, as recorded (a user's latest vote is the one that counts)."""

    vote_id: int
    vote: str  # "up" or "down"
    user_id: str | None
    comment: str | None
    created_at: str  # when the user voted
    recorded_at: str  # when the store received it (grading sees votes newer than its last grade)
    recorded_by: str | None  # an app voting for its users, or "curated hit <run>" when passed on


class VoteSummary(TypedDict):
    """Each voter's latest vote counted once, and every vote recorded."""

    up: int
    down: int
    votes: int


class StoredGrade(TypedDict):
    """One criterion's grade of one grading of a run."""

    criterion: str
    criterion_version: str
    judge: str  # "offline:local", "llm:<model>", "human:<reviewer>"
    score: float | None
    passed: bool | None
    reason: str | None
    veto: str | None  # why the checks vetoed it, if they did
    tokens: Any  # the judge's token use, when it reports one
    graded_at: str


class StoredWriteback(TypedDict):
    """A run's written-back answer in the collection, or why it was taken out."""

    doc_id: str
    collection: str
    state: str  # a WritebackState
    written_at: str
    revoked_at: str | None
    revoke_reason: str | None
    grader_versions: Any  # criterion -> version of the grades it was written back under


class GradingFailure(TypedDict):
    """Gradings of a run that failed, and whether it is parked (no longer tried)."""

    failures: int
    last_error: str | None
    last_failed_at: str
    parked_at: str | None


class QaRun(TypedDict, total=False):
    """A recorded question and answer with everything the store holds on it. The store always
    fills every key; not total, because the pure grading functions also take the part of a run
    they read (question, answer, sources) from labelled sets and tests. Keys and value types
    are still checked: a misspelt key is an error."""

    run_id: str
    created_at: str
    recorded_at: str
    app: str
    user_id: str | None
    question: str
    rewrites: list[str]
    sources: list[dict[str, Any]]  # RetrievedSource fields, as recorded
    answer: str
    model: str
    prompt_name: str
    prompt_version: str
    prompt_tokens: int | None
    completion_tokens: int | None
    token_source: str
    latency_ms: float | None
    metadata: dict[str, Any]
    votes: list[StoredVote]
    vote_summary: VoteSummary
    grades: list[StoredGrade]
    writeback: StoredWriteback | None
    grading_failure: GradingFailure | None
