"""The runs and feedback HTTP API, mounted on Airflow's API server by `plugins/ragloop_plugin.py`
(under `/ragloop`): any app records its runs here, and users' votes arrive here.

Airflow does not authenticate plugin apps, so this one does, before anything else reads the
request: every request but /health (the docs and the OpenAPI schema included) needs
`Authorization: Bearer <token>` with a token Airflow's own REST API accepts (from `POST
/auth/token`, or your auth manager's login), checked by Airflow's auth manager. Recording a run or
a vote needs the permission to create asset events (it emits one on `ragloop://runs`); reading
needs the permission to read assets. A vote belongs to the authenticated user; an app that
records for its end users needs the `ragloop_record_for_users` custom-view permission (the admin
role under the simple auth manager), and its votes then record both the user and the app.

Errors are JSON: {"error": "...", "fields": [{"field": "sources.0.doc_id", "message": "..."}]}.
A database that cannot be reached gives 503, and nothing of the request is written.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal
from collections.abc import Callable

from dataclasses import dataclass

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ragloop.airflow.events import emit_runs_event
from ragloop.errors import RagloopError
from ragloop.runs import (
    RunId,
    RunIn,
    RunNotFound,
    RunStore,
    RunStoreError,
    RunStoreUnavailable,
    VoteIn,
)
from ragloop.runs.store import ChunkActionInvalid

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
MAX_LIST = 500


class ChunkActionIn(BaseModel):
    """An operator's action on a chunk: pin (with a boost), unpin, reset, hide, unhide; and why."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["pin", "unpin", "reset", "hide", "unhide"]
    reason: str = Field(min_length=1, max_length=2000)
    boost: float | None = None


class ApiError(Exception):
    def __init__(self, status: int, error: str, fields: list[dict] | None = None, headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.fields, self.headers = status, error, fields or [], headers


def _error(status: int, error: str, fields: list[dict] | None = None, headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if fields:
        body["fields"] = fields
    return JSONResponse(status_code=status, content=body, headers=headers)


def auth_headers(status: int) -> dict[str, str]:
    """What a refusal tells the client: how to authenticate (401), when to retry (503)."""
    return {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "5"} if status == 503 else {}


class NotAuthorized(RagloopError):
    """A request without a valid token or without the permission it needs (401/403), or one
    whose token cannot be checked now (503); `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def authenticate(token: str, method: Literal["GET", "POST"], action: str) -> tuple[Any, Any]:
    """The Airflow user behind `token`, allowed to read (GET) or create (POST) asset events, and
    the auth manager that said so: the one token check of the runs API and the operator's page.
    `action` names what the request would do, for the 403."""
    from airflow.api_fastapi.app import get_auth_manager

    auth_manager = get_auth_manager()
    try:
        user = await auth_manager.get_user_from_token(token)
    except Exception as err:  # noqa: BLE001 - expired, malformed, wrong signature: all the same to the caller
        if is_database_outage(err):
            # Checking the token needs Airflow's metadata DB (revoked tokens, users): down, it
            # says nothing about the token, so the caller is told to retry, not to log in again.
            raise NotAuthorized(
                503, "Airflow's metadata database cannot be reached to check the token; nothing was done, retry later"
            ) from None
        raise NotAuthorized(
            401, "invalid or expired token: log in to Airflow again, or get a new one from POST /auth/token"
        ) from None
    if not auth_manager.is_authorized_asset(method=method, user=user):
        raise NotAuthorized(403, f"user {user.get_name()!r} may not {action}")
    return user, auth_manager


def is_database_outage(err: BaseException) -> bool:
    """The error (or one it was raised from) is a database that cannot be reached, not a bad token."""
    from sqlalchemy.exc import DBAPIError

    cause: BaseException | None = err
    for _ in range(10):  # a chain of causes, not a cycle
        if cause is None:
            return False
        if isinstance(cause, (DBAPIError, ConnectionError)):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class BodyLimit:
    """Refuses bodies over `limit` bytes with 413 before anything parses them, whether the client
    sent a Content-Length or streamed the body in chunks."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = _error(413, f"request body is larger than {self.limit} bytes", [{"field": "(body)", "message": "too large"}])
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await too_large(scope, receive, send)
        received = 0
        chunks: list[dict] = []
        while True:  # bounded by the limit: we stop reading past it
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.limit:
                return await too_large(scope, receive, send)
            if not message.get("more_body"):
                break

        async def replay():
            return chunks.pop(0) if chunks else await receive()

        return await self.app(scope, replay, send)


def create_app(
    store_factory: Callable[[], RunStore] | None = None,
    emit: Callable[[dict], bool] = emit_runs_event,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API app. The store opens on the first request (plugins load in every Airflow process;
    only the API server serves requests)."""
    app = FastAPI(
        title="ragloop runs API",
        description=__doc__,
        version="1",
        openapi_url="/openapi.json",
    )
    state: dict[str, RunStore] = {}

    def store() -> RunStore:
        if "store" not in state:
            state["store"] = (store_factory or RunStore.default)()
        return state["store"]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return _error(err.status, err.error, err.fields, err.headers)

    def principal(request: Request) -> Principal:
        return request.state.principal

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        fields = []
        for problem in err.errors():
            location = [str(p) for p in problem.get("loc", ())]
            if location and location[0] in ("body", "query", "path"):
                location = location[1:]
            fields.append({"field": ".".join(location) or "(body)", "message": problem.get("msg", "invalid")})
        return _error(422, "invalid request: " + "; ".join(f"{f['field']}: {f['message']}" for f in fields), fields)

    @app.exception_handler(RunStoreUnavailable)
    async def unavailable(request: Request, err: RunStoreUnavailable):
        log.error("%s", err)
        # The connection's name, not the backend's error text: that stays in the server's log.
        where = f" (Airflow connection {err.conn_id!r} cannot be read)" if err.conn_id else ""
        return _error(503, f"the run store is unavailable{where}; nothing was written, retry later", headers={"Retry-After": "5"})

    @app.exception_handler(RunNotFound)
    async def not_found(request: Request, err: RunNotFound):
        return _error(404, str(err), [{"field": "run_id", "message": "no such run"}])

    @app.exception_handler(ChunkActionInvalid)
    async def invalid_action(request: Request, err: ChunkActionInvalid):
        return _error(422, str(err))

    @app.exception_handler(RunStoreError)
    async def store_error(request: Request, err: RunStoreError):
        log.error("%s", err)
        return _error(500, str(err))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception):
        # Never a plain-text 500: the error stays in the server's log, the caller gets JSON.
        log.error("Unexpected error on %s %s", request.method, request.url.path, exc_info=err)
        return _error(500, "internal error; see the API server's log")

    @app.post("/runs", status_code=201)
    def record_run(run: RunIn, request: Request) -> JSONResponse:
        who = principal(request)
        run = who.owns(run)
        run_id, created = store().record_run(run, recorded_by=who.recorded_by)
        if created:
            emit({"event": "run", "run_id": run_id, "app": run.app or "api"})
        return JSONResponse(status_code=201 if created else 200, content={"run_id": run_id, "created": created})

    @app.post("/runs/{run_id}/feedback", status_code=201)
    def add_feedback(run_id: RunId, vote: VoteIn, request: Request) -> dict:
        who = principal(request)
        # A run the caller may not see answers 404, as a missing one does: no vote on it.
        vote_id, summary = store().add_vote(run_id, who.owns_vote(vote), recorded_by=who.recorded_by, audience=who.audience)
        emit({"event": "vote", "run_id": run_id, "vote": vote.vote})
        return {"run_id": run_id, "vote_id": vote_id, "vote_summary": summary}

    # Runs are returned as JSONResponse, serialised by json.dumps alone: FastAPI's own encoder
    # recurses a few frames per level, and one run stored with deep metadata (before the bounds at
    # the door) made every listing answer 500.
    @app.get("/runs/{run_id}")
    def get_run(run_id: RunId, request: Request) -> JSONResponse:
        # A run above the caller's audience is not there for them (the store decides, as for every surface).
        return JSONResponse(content=store().get_run(run_id, audience=principal(request).audience))

    @app.get("/runs")
    def list_runs(
        request: Request,
        since: Annotated[datetime | None, Query(description="ISO 8601 time; runs created at or after it")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
        app_name: Annotated[str | None, Query(alias="app", max_length=100)] = None,
    ) -> JSONResponse:
        who = principal(request)
        runs = store().list_runs(since=since, limit=limit, app=app_name, audience=who.audience)
        return JSONResponse(content={"runs": runs, "count": len(runs)})

    # Feedback ranking: what votes did to retrieval, and operators' actions on chunks. Acting on a
    # chunk changes what everyone retrieves: it needs the write permission (as recording does) and
    # the internal audience (op and admin under the simple auth manager), as `ragloop chunk` does locally.
    @app.post("/chunks/{chunk_id}/actions", status_code=201)
    def act_on_chunk(chunk_id: Annotated[str, Path(min_length=1, max_length=100)], body: ChunkActionIn, request: Request) -> dict:
        who = principal(request)
        if who.audience != "internal":
            raise ApiError(403, f"{who.name} may not act on chunks: that needs the {INTERNAL_PERMISSION} permission")
        recorded = store().record_chunk_action(chunk_id, body.action, actor=who.name, reason=body.reason, boost=body.boost)
        log.info("Chunk %s: %s by %s: %s", chunk_id, body.action, who.name, body.reason)
        return recorded

    @app.get("/boosts")
    def boosts(request: Request, limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 10) -> JSONResponse:
        """The most boosted and most demoted chunks (votes on runs the caller may see), and every
        chunk an operator acted on, with who, when and why."""
        return JSONResponse(content=store().boost_report(audience=principal(request).audience, limit=limit))

    @app.get("/curated")
    def curated(request: Request) -> JSONResponse:
        """Curated answers that served questions: hits per curated answer."""
        hits = store().curated_hits(audience=principal(request).audience)
        return JSONResponse(content={"curated": hits, "count": len(hits)})

    @app.get("/health")
    def health():
        # Unauthenticated on purpose, and says nothing but whether the store answers.
        try:
            store().schema_version()
            return {"status": "ok"}
        except RunStoreError:
            return JSONResponse(status_code=503, content={"status": "unavailable"})

    if max_body_bytes:
        app.add_middleware(BodyLimit, limit=max_body_bytes)
    # Added last, so outermost: every request but /health is authenticated before anything reads
    # its body, path or query (no 422 or 413 before 401), /docs, /redoc and /openapi.json included.
    app.add_middleware(Authenticate, public_paths={"/health"})
    return app


# The custom-view permission an app needs to record votes and runs for its end users. Auth managers
# that model custom permissions (FAB, Keycloak) grant it like any other; Airflow's simple auth
# manager grants every custom view to every viewer, so with it only the admin role has it.
ON_BEHALF_PERMISSION = "ragloop_record_for_users"
# The custom-view permission to read runs that retrieved internal passages (Slack, sources marked
# internal): the caller's audience. Under the simple auth manager: the op and admin roles.
INTERNAL_PERMISSION = "ragloop_internal_content"


@dataclass(frozen=True)
class Principal:
    """The authenticated user behind the bearer token, and whether it may speak for others."""

    name: str
    on_behalf: bool
    audience: str = "public"  # "internal" with the ragloop_internal_content permission

    @property
    def recorded_by(self) -> str | None:
        """Stored with a vote cast for someone else: the app that cast it."""
        return self.name if self.on_behalf else None

    def owns_vote(self, vote: VoteIn) -> VoteIn:
        """A vote belongs to the principal, unless the principal may record for its users and
        names one; the caller's created_at is kept as information, never for ordering."""
        if self.on_behalf and vote.user_id:
            return vote
        return vote.model_copy(update={"user_id": self.name})

    def owns(self, run: RunIn) -> RunIn:
        if self.on_behalf:
            return run.model_copy(update={"user_id": run.user_id or self.name})
        return run.model_copy(update={"user_id": self.name, "votes": [self.owns_vote(v) for v in run.votes]})


def viewer_audience(auth_manager, user) -> str:
    """The audience of an authenticated user, for every surface (this API, the operator's page):
    "internal" with the ragloop_internal_content permission, else "public"."""
    return _audience(auth_manager, user)


def _audience(auth_manager, user) -> str:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    if isinstance(auth_manager, SimpleAuthManager):
        allowed = str(getattr(user, "role", "") or "").upper() in ("OP", "ADMIN")
    else:
        allowed = bool(auth_manager.is_authorized_custom_view(method="GET", resource_name=INTERNAL_PERMISSION, user=user))
    return "internal" if allowed else "public"


def _may_record_for_users(auth_manager, user) -> bool:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    if isinstance(auth_manager, SimpleAuthManager):
        return str(getattr(user, "role", "") or "").upper() == "ADMIN"
    return bool(auth_manager.is_authorized_custom_view(method="POST", resource_name=ON_BEHALF_PERMISSION, user=user))


class Authenticate:
    """Bearer authentication through Airflow's auth manager, before any routing or parsing.
    Writing (any method but GET/HEAD) needs the permission to create asset events, reading the
    permission to read assets; the principal is left in the request's state."""

    def __init__(self, app, public_paths: set[str]):
        self.app, self.public_paths = app, public_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan and websocket scopes carry no request to check
            return await self.app(scope, receive, send)
        # The path inside this app: mounted under /ragloop, scope["path"] still holds the prefix.
        root = scope.get("root_path") or ""
        path = scope["path"][len(root) :] if root and scope["path"].startswith(root) else scope["path"]
        if path in self.public_paths:
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = _error(
                401, "missing bearer token: send Authorization: Bearer <token from POST /auth/token>", headers=auth_headers(401)
            )
            return await response(scope, receive, send)
        method: Literal["GET", "POST"] = "GET" if scope["method"] in ("GET", "HEAD") else "POST"
        action = "record runs (create asset events)" if method == "POST" else "read runs (read assets)"
        try:
            user, auth_manager = await authenticate(token.strip(), method, action)
        except NotAuthorized as refused:
            return await _error(refused.status, refused.message, headers=auth_headers(refused.status))(scope, receive, send)
        scope.setdefault("state", {})["principal"] = Principal(
            user.get_name(), _may_record_for_users(auth_manager, user), _audience(auth_manager, user)
        )
        return await self.app(scope, receive, send)
