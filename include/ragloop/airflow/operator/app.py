"""The ragloop page in the Airflow UI: a FastAPI app that `plugins/ragloop_plugin.py` mounts on
Airflow's API server under `/ragloop-ui`, and an external view that puts it in the UI's navigation
(the UI shows it in its frame, at /plugin/ragloop).

Airflow does not authenticate plugin apps, so this one does, as the runs API does: every request
needs a token Airflow's auth manager accepts, either `Authorization: Bearer <token>` or the UI's
own session cookie (`_token`, set at login; the frame sends it). Without one, nothing but a
"log in" page is served. Reading needs the permission to read assets (as reading runs does);
revoking an answer needs the permission to create asset events (as recording runs does).

A revoke is a POST with a JSON body and the `X-Ragloop-Request` header: a form on another site
cannot send that header, so the session cookie alone cannot be used to revoke (no CSRF).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, Literal
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from ragloop.airflow.runs_api import NotAuthorized, auth_headers, authenticate, viewer_audience

log = logging.getLogger(__name__)

URL_PREFIX = "/ragloop-ui"
COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN
CSRF_HEADER = "x-ragloop-request"


class RevokeIn(BaseModel):
    run_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    reason: str = Field(min_length=1, max_length=1000)


def external_view() -> dict[str, Any]:
    """The UI's navigation entry (Airflow 3 `external_views`): a top-level item that shows the
    page in the UI's frame, like Airflow's own pages."""
    return {
        "name": "ragloop",
        "href": f"{URL_PREFIX}/",
        "url_route": "ragloop",
        "destination": "nav",
        "nav_top_level": True,
    }


class _GapsCache:
    """Docs gaps embed every recorded question: computed again only when runs, votes or grades
    changed (the store's cheap `change_marker`), not on every page view; one entry per audience,
    since each viewer's topics hold only the questions of the runs they may see."""

    def __init__(self):
        self.values: dict[str, tuple[tuple, dict]] = {}
        self.lock = threading.Lock()

    def get(self, store, audience: str, compute: Callable[[], dict]) -> dict:
        key = store.change_marker()
        with self.lock:
            cached = self.values.get(audience)
            if cached is not None and cached[0] == key:
                return cached[1]
            value = compute()
            self.values[audience] = (key, value)
            return value


def create_ui_app(
    config_path: str | None = None,
    store_factory: Callable[[], Any] | None = None,
    weaviate_conn_id: str | None = None,
) -> FastAPI:
    """The page's app. The run store opens on the first request (plugins load in every Airflow
    process; only the API server serves requests)."""
    from ragloop.index.endpoint import WEAVIATE_CONN_ID

    conn_id = weaviate_conn_id or WEAVIATE_CONN_ID
    app = FastAPI(title="ragloop page", docs_url=None, redoc_url=None, openapi_url=None)
    state: dict[str, Any] = {}
    gaps_cache = _GapsCache()

    def store():
        if "store" not in state:
            from ragloop.runs import RunStore

            state["store"] = (store_factory or RunStore.default)()
        return state["store"]

    async def user_of(request: Request, method: Literal["GET", "POST"]):
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        if not token:
            raise NotAuthorized(401, "not logged in: log in to Airflow, or send Authorization: Bearer <token>")
        action = "revoke written-back answers (create asset events)" if method == "POST" else "read ragloop's page (read assets)"
        return await authenticate(token, method, action)

    @app.exception_handler(NotAuthorized)
    async def not_authorized(request: Request, err: NotAuthorized):
        headers = {**auth_headers(err.status), "Cache-Control": "no-store"}
        if "text/html" in request.headers.get("accept", "") and request.method == "GET":
            login = "/auth/login?next=" + str(request.url.path)
            body = (
                '<!doctype html><meta charset=utf-8><title>ragloop</title><body style="font:14px sans-serif;padding:20px">'
                f'<h1 style="font-size:18px">ragloop</h1><p>{_escape(err.message)}.</p>'
                + (f'<p><a href="{_escape(login)}" target="_top">Log in</a></p>' if err.status == 401 else "")
            )
            return HTMLResponse(body, status_code=err.status, headers=headers)
        return JSONResponse({"error": err.message}, status_code=err.status, headers=headers)

    def gaps_for(audience: str) -> dict:
        from ragloop.config import load_config
        from ragloop.airflow.operator.data import docs_gaps

        config = load_config(config_path)
        return gaps_cache.get(store(), audience, lambda: docs_gaps(store(), config, None, audience=audience))

    def gather_now(audience: str, since: datetime | None = None) -> dict:
        from ragloop.airflow.operator.data import gather

        return gather(config_path, since, conn_id, store=store(), gaps_provider=lambda: gaps_for(audience), audience=audience)

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/") + "/"

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request):
        from starlette.concurrency import run_in_threadpool

        from ragloop.airflow.operator.render import render_html

        user, auth_manager = await user_of(request, "GET")
        can_revoke = auth_manager.is_authorized_asset(method="POST", user=user)
        data = await run_in_threadpool(gather_now, viewer_audience(auth_manager, user))
        html = await run_in_threadpool(lambda: render_html(data, standalone=False, base=base(request), can_revoke=can_revoke))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/data.json")
    async def data_json(request: Request):
        from starlette.concurrency import run_in_threadpool

        from ragloop.airflow.operator.render import render_json

        user, auth_manager = await user_of(request, "GET")
        data = await run_in_threadpool(gather_now, viewer_audience(auth_manager, user))
        return Response(render_json(data), media_type="application/json", headers={"Cache-Control": "no-store"})

    @app.get("/gaps.csv")
    async def gaps_csv(request: Request):
        from starlette.concurrency import run_in_threadpool

        user, auth_manager = await user_of(request, "GET")
        audience = viewer_audience(auth_manager, user)
        gaps = await run_in_threadpool(gaps_for, audience)
        return PlainTextResponse(
            gaps.get("csv") or "",
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="ragloop-docs-gaps.csv"', "Cache-Control": "no-store"},
        )

    @app.post("/revoke")
    async def revoke(request: Request):
        from starlette.concurrency import run_in_threadpool

        from ragloop.grading import revoke_by_hand
        from ragloop.runs import RunNotFound

        user, auth_manager = await user_of(request, "POST")
        if not request.headers.get(CSRF_HEADER):
            return JSONResponse({"error": f"missing the {CSRF_HEADER} header (the page sends it)"}, status_code=400)
        try:
            body = RevokeIn.model_validate(await request.json())
        except Exception as err:  # noqa: BLE001 - any malformed body is the caller's mistake
            return JSONResponse({"error": f"invalid request: {err}"}, status_code=422)
        reason = f"{body.reason} (by {user.get_name()} on the ragloop page)"
        try:
            # A run the user may not see is not there for them, to revoke or otherwise.
            await run_in_threadpool(lambda: store().get_run(body.run_id, audience=viewer_audience(auth_manager, user)))
            result = await run_in_threadpool(lambda: revoke_by_hand(body.run_id, reason, config_path, conn_id))
        except RunNotFound:
            return JSONResponse({"error": f"no run {body.run_id!r}"}, status_code=404)
        log.info("Run %s revoked by %s on the ragloop page: %s", body.run_id, user.get_name(), body.reason)
        return result

    return app


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
