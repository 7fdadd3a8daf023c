"""The live Slack reader: the Web API through the Airflow Slack connection, from per-channel
watermarks, with bounded rate-limit waits (see the package docstring for the rules)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from collections.abc import Iterator

from ragloop.documents import Document
from ragloop.sources.base import ExtractReport, SourceError
from ragloop.sources.slack.messages import CHANNEL_ID, archive_permalink, display_name, ts_float

if TYPE_CHECKING:
    from ragloop.sources.slack import SlackSource

log = logging.getLogger(__name__)

# Messages posted just before the last run's newest one may still have been arriving (clock
# skew between Slack's servers): re-read a little before the watermark.
OVERLAP_SECONDS = 600
PAGE_LIMIT = 200  # messages per history/replies page (Slack recommends ≤ 200)
MAX_PAGES = 10_000  # a cursor that never ends is a server bug, not a reason to loop forever
MAX_RETRY_AFTER_SECONDS = 120  # a longer rate-limit wait fails the channel; the next run retries
RATE_LIMIT_RETRIES = 3


class _ChannelFailed(Exception):
    """A channel cannot be read; the message is the reason given to `report.fail`."""


def _bounded_rate_limit_handler():
    """slack_sdk's 429 handler (waits Retry-After), for a few attempts, and only for waits a
    nightly run can afford: a longer one fails the channel, and the next run retries."""
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            retry_after = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
            try:
                wait = int(retry_after[0] if isinstance(retry_after, list) else retry_after)
            except ValueError:
                wait = 1
            if wait > MAX_RETRY_AFTER_SECONDS:
                log.warning("Slack asks to wait %d s (more than %d s): not waiting", wait, MAX_RETRY_AFTER_SECONDS)
                return False
            log.info("Slack rate limit: waiting %d s as Retry-After asks", wait)
            return True

    return BoundedRateLimitRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)


def slack_client(conn_id: str):
    """A `slack_sdk.WebClient` from the Airflow connection, through the Slack provider's hook (token
    in the password, `extra.base_url` for another API endpoint), with bounded rate-limit retries."""
    from airflow.providers.slack.hooks.slack import SlackHook
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

    hook = SlackHook(slack_conn_id=conn_id, retry_handlers=[ConnectionErrorRetryHandler(), _bounded_rate_limit_handler()])
    return hook.get_conn()


class LiveReader:
    def __init__(self, source: SlackSource, report: ExtractReport):
        self.source = source
        self.report = report
        self._client = None
        self._users: dict[str, str] = {}  # user id -> display name, once per run
        self._channel_names: dict[str, str] = {}
        self._workspace_url: str | None = None

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = slack_client(self.source.config["connection"])
            except Exception as err:
                raise SourceError(
                    f"source {self.source.id!r}: cannot use Airflow connection {self.source.config['connection']!r}: {err}"
                ) from err
        return self._client

    def call(self, method: str, **params) -> dict:
        from slack_sdk.errors import SlackApiError

        try:
            return self.client.api_call(method, http_verb="GET", params=params).data
        except SlackApiError as err:
            code = err.response.get("error") if err.response is not None else None
            raise _ChannelFailed(f"Slack API {method} failed: {code or err}") from None
        except Exception as err:  # noqa: BLE001 - network errors after retries
            raise _ChannelFailed(f"Slack API {method} failed: {type(err).__name__}: {err}") from None

    def pages(self, method: str, key: str, **params) -> Iterator[dict]:
        cursor = None
        for _ in range(MAX_PAGES):
            data = self.call(method, **params, limit=PAGE_LIMIT, **({"cursor": cursor} if cursor else {}))
            yield from data.get(key) or []
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
        raise _ChannelFailed(f"Slack API {method} returned more than {MAX_PAGES} pages")

    def user_name(self, user_id: str) -> str:
        if user_id not in self._users:
            try:
                self._users[user_id] = display_name(self.call("users.info", user=user_id).get("user") or {}, user_id)
            except _ChannelFailed as err:
                log.warning("%s: cannot resolve user %s (%s); showing the id", self.source.id, user_id, err)
                self._users[user_id] = user_id
        return self._users[user_id]

    def channel_label(self, channel_id: str) -> str:
        return self._channel_names.get(channel_id, channel_id)

    def workspace_url(self) -> str:
        if self._workspace_url is None:
            try:
                self._workspace_url = (self.call("auth.test").get("url") or "https://slack.com/").rstrip("/") + "/"
            except _ChannelFailed:
                self._workspace_url = "https://slack.com/"
        return self._workspace_url

    def permalink(self, channel_id: str, thread_ts: str) -> str:
        return archive_permalink(self.workspace_url(), channel_id, thread_ts)

    def resolve_channels(self) -> list[tuple[str, str]]:
        """(id, name) per configured channel; names are looked up with conversations.list once."""
        wanted = [c.strip().lstrip("#") for c in self.source.channels]
        names = [c for c in wanted if not CHANNEL_ID.match(c)]
        by_name: dict[str, str] = {}
        if names:
            try:
                for channel in self.pages(
                    "conversations.list", "channels", types="public_channel,private_channel", exclude_archived="true"
                ):
                    by_name[channel.get("name", "")] = channel["id"]
                    self._channel_names[channel["id"]] = channel.get("name", channel["id"])
            except _ChannelFailed as err:
                for name in names:
                    self.report.fail(f"#{name}", f"cannot list channels to find it: {err}")
        resolved = []
        for wanted_channel in wanted:
            if CHANNEL_ID.match(wanted_channel):
                resolved.append((wanted_channel, self._channel_names.get(wanted_channel, wanted_channel)))
            elif wanted_channel in by_name:
                resolved.append((by_name[wanted_channel], wanted_channel))
            elif by_name:
                self.report.fail(f"#{wanted_channel}", "no channel of this name is visible to the token")
        return resolved

    def read(self, watermarks: dict[str, dict], full_listing: bool) -> Iterator[Document]:
        for channel_id, name in self.resolve_channels():
            state = {} if full_listing else watermarks.get(channel_id) or {}
            documents: list[Document] = []
            try:
                new_state = self.read_channel(channel_id, name, state, documents)
            except _ChannelFailed as err:
                # Documents read before the failure are still indexed; the watermark stays, so
                # the next run reads the same window again.
                self.report.fail(f"#{name} ({channel_id})" if name != channel_id else channel_id, str(err))
                yield from documents
                continue
            yield from documents
            self.report.watermarks[channel_id] = new_state

    def read_channel(self, channel_id: str, name: str, state: dict, documents: list[Document]) -> dict:
        now = time.time()
        horizon = now - self.source.lookback_days * 86_400
        watermark = state.get("watermark")
        oldest = max(0.0, ts_float(watermark) - OVERLAP_SECONDS) if watermark else 0.0
        newest = ts_float(watermark) if watermark else 0.0
        # thread ts -> its latest activity, for the threads to (re-)read through replies
        threads: dict[str, float] = {}
        singles: list[dict] = []
        for message in self.pages("conversations.history", "messages", channel=channel_id, oldest=f"{oldest:.6f}"):
            ts = message.get("ts")
            if not ts:
                continue
            newest = max(newest, ts_float(ts))
            thread_ts = message.get("thread_ts") or ts
            latest = max(ts_float(ts), ts_float(message.get("latest_reply") or ts))
            if thread_ts != ts or message.get("reply_count") or message.get("latest_reply"):
                threads[thread_ts] = max(threads.get(thread_ts, 0.0), latest)
            else:
                singles.append(message)
        # Threads active within the look-back window, from the stored state: a reply to one of
        # them after the watermark is not in the history window (history lists parents).
        for thread_ts, last in (state.get("threads") or {}).items():
            if float(last) >= horizon and thread_ts not in threads:
                threads[thread_ts] = float(last)
        active: dict[str, float] = {}
        for message in singles:
            if ts_float(message["ts"]) >= horizon:
                active[message["ts"]] = ts_float(message["ts"])
            document = self.source.thread_document(
                channel_id,
                name,
                message["ts"],
                [message],
                self.permalink(channel_id, message["ts"]),
                self.user_name,
                self.channel_label,
                self.report,
            )
            if document:
                documents.append(document)
        for thread_ts in sorted(threads):
            try:
                messages = list(self.pages("conversations.replies", "messages", channel=channel_id, ts=thread_ts))
            except _ChannelFailed as err:
                if "thread_not_found" in str(err):  # the parent was deleted with its thread
                    self.report.skip(f"#{name} thread {thread_ts}", "thread deleted", self.source.doc_id(channel_id, thread_ts))
                    continue
                raise
            if not messages:
                continue
            last = max(ts_float(m["ts"]) for m in messages if m.get("ts"))
            newest = max(newest, last)
            if last >= horizon:
                active[thread_ts] = last
            document = self.source.thread_document(
                channel_id,
                name,
                thread_ts,
                messages,
                self.permalink(channel_id, thread_ts),
                self.user_name,
                self.channel_label,
                self.report,
            )
            if document:
                documents.append(document)
        return {
            "watermark": f"{newest:.6f}" if newest else None,
            "threads": {ts: f"{last:.6f}" for ts, last in sorted(active.items())},
        }
