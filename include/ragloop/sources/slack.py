"""Slack source: one Document per thread, from the live Web API or a workspace export.

Live (`connection:`, an Airflow Slack connection read by the provider's SlackHook, which builds
a `slack_sdk.WebClient`): per channel, `conversations.history` from the channel's watermark minus
an overlap, then `conversations.replies` for every thread with activity in that window and for
every thread the stored state says was active within `lookback_days` (late replies to older
threads). Cursor pagination; 429s wait out their Retry-After (bounded). A channel the token
cannot read (not a member, gone) fails alone, named; the others go on. The watermark proposed
for a channel is the newest message timestamp seen (Slack's clock, not ours), with the threads
active within the look-back window; it is proposed only when the whole channel was read.

Export (`export:`, a standard workspace export folder or zip: `channels.json`, `users.json`,
`<channel>/<YYYY-MM-DD>.json`): read whole every run, so its listing is complete. A malformed
day file or record is reported by file and record; the rest is indexed. Without `users.json`
speakers are shown by user id, with a warning.

A thread's document: the parent and its replies in order, each with the speaker's display name
and UTC time, as markdown (code blocks kept); joins, leaves, topic changes, bot messages and
empty messages are left out, and a thread with nothing left is skipped. doc_id
`<source id>:<channel id>/<thread ts>`, URL the thread's permalink, updated_at its latest message.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from ragloop.documents import Document
from ragloop.sources.base import (
    ApiSource,
    ExtractReport,
    SourceConfigError,
    SourceError,
    check_whole_number,
    record_failure_reason,
)

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_DAYS = 14
# Messages posted just before the last run's newest one may still have been arriving (clock
# skew between Slack's servers): re-read a little before the watermark.
OVERLAP_SECONDS = 600
PAGE_LIMIT = 200  # messages per history/replies page (Slack recommends ≤ 200)
MAX_PAGES = 10_000  # a cursor that never ends is a server bug, not a reason to loop forever
MAX_RETRY_AFTER_SECONDS = 120  # a longer rate-limit wait fails the channel; the next run retries
RATE_LIMIT_RETRIES = 3
TITLE_CHARS = 90
# What one file of an export may expand to, and how much more than its compressed size: a real
# export's JSON compresses 5-20 times; a zip bomb (a few hundred KB that inflate to gigabytes)
# is refused before it is inflated, and a member whose header lies is cut off at the limit.
MAX_EXPORT_FILE_BYTES = 128 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
RATIO_CHECKED_ABOVE_BYTES = 1024 * 1024  # small files may compress far better, harmlessly
# Message subtypes that are channel housekeeping or automation, not conversation.
NOISE_SUBTYPES = {
    "channel_join",
    "channel_leave",
    "group_join",
    "group_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_archive",
    "channel_unarchive",
    "group_topic",
    "group_purpose",
    "group_name",
    "bot_message",
    "bot_add",
    "bot_remove",
    "pinned_item",
    "unpinned_item",
    "reminder_add",
    "tombstone",
    "joiner_notification",
    "slackbot_response",
    "channel_convert_to_private",
    "channel_posting_permissions",
}
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class _ChannelFailed(Exception):
    """A channel cannot be read; the message is the reason given to `report.fail`."""


def ts_float(ts: Any) -> float:
    return float(ts)


def ts_time(ts: Any) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=timezone.utc)


def slack_to_markdown(text: str, user_name: Callable[[str], str], channel_name: Callable[[str], str]) -> str:
    """Slack's mrkdwn to markdown: mentions by name, links, entities; code fences on own lines."""

    def link(match: re.Match) -> str:
        target, _, label = match[1].partition("|")
        if target.startswith("@"):
            return "@" + (label or user_name(target[1:]))
        if target.startswith("#"):
            return "#" + (label or channel_name(target[1:]))
        if target.startswith("!"):  # <!here>, <!channel>, <!subteam^S1|@team>
            return label or "@" + target[1:].split("^")[0]
        return f"[{label}]({target})" if label and label != target else target

    text = html.unescape(re.sub(r"<([^<>\n]+)>", link, text))
    # Slack writes ```code``` inline; markdown needs the fences on lines of their own. The text
    # between an odd and an even fence is code and is kept as it is.
    parts = text.split("```")
    if len(parts) % 2 == 0:  # an unclosed fence: the rest is code
        parts.append("")
    out = [parts[0]]
    for code, prose in zip(parts[1::2], parts[2::2]):
        out.append(f"\n\n```\n{code.strip(chr(10))}\n```\n\n{prose.lstrip(' ')}")
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()


def display_name(user: dict, user_id: str) -> str:
    """How Slack shows a user (a users.info or users.json object): display name, else real name."""
    profile = user.get("profile") or {}
    return profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name") or user_id


def archive_permalink(workspace_url: str, channel_id: str, thread_ts: str) -> str:
    """Slack's permalink shape: /archives/<channel>/p<ts without its dot>."""
    return f"{workspace_url.rstrip('/')}/archives/{channel_id}/p{thread_ts.replace('.', '')}"


def is_conversation(message: dict) -> bool:
    """A message people wrote, with text: not housekeeping, not a bot, not empty."""
    if message.get("subtype") in NOISE_SUBTYPES or message.get("bot_id") or message.get("bot_profile"):
        return False
    return bool((message.get("text") or "").strip())


class SlackSource(ApiSource):
    type = "slack"
    kind = "slack"
    export_kind = "a Slack workspace export folder or zip"
    config_keys = {
        "channels": (list, False),
        "connection": (str, False),
        "export": (str, False),
        "lookback_days": (int, False),
        "chunking": (dict, False),
    }

    def __init__(self, config: dict[str, Any], project_root: Path):
        super().__init__(config, project_root)
        self.channels: list[str] = list(config.get("channels") or [])
        self.lookback_days: int = (
            int(config["lookback_days"]) if config.get("lookback_days") is not None else DEFAULT_LOOKBACK_DAYS
        )

    @classmethod
    def check_config(cls, config: dict[str, Any], project_root: Path) -> None:
        super().check_config(config, project_root)
        channels = config.get("channels")
        if channels is not None and (not channels or not all(isinstance(c, str) and c.strip().lstrip("#") for c in channels)):
            raise SourceConfigError(
                f"source {config['id']!r}: channels must be a non-empty list of channel ids or names, not {channels!r}",
                "channels",
            )
        if config.get("connection") is not None and not channels:
            raise SourceConfigError(f"source {config['id']!r}: a live Slack source needs channels (ids or names)", "channels")
        check_whole_number(config, "lookback_days", 0)

    def read(self, report: ExtractReport, watermarks: dict[str, dict], full_listing: bool = False) -> Iterator[Document]:
        if self.live:
            yield from _LiveReader(self, report).read(watermarks, full_listing)
        else:
            yield from _ExportReader(self, report).read()

    # --- documents, shared by both readers ------------------------------------------------

    def doc_id(self, channel_id: str, thread_ts: str) -> str:
        return f"{self.id}:{channel_id}/{thread_ts}"

    def thread_document(
        self,
        channel_id: str,
        channel_name: str,
        thread_ts: str,
        messages: list[dict],
        url: str,
        user_name: Callable[[str], str],
        channel_label: Callable[[str], str],
        report: ExtractReport,
    ) -> Document | None:
        """The thread as a Document, or None: reported as skipped when nothing in it is
        conversation, as failed (named) when a message cannot be read (a `text` that is a number,
        a user that is a list); the other threads are read all the same."""
        try:
            return self._thread_document(channel_id, channel_name, thread_ts, messages, url, user_name, channel_label, report)
        except Exception as err:  # noqa: BLE001 - one crafted thread fails alone
            report.fail(f"#{channel_name} thread {thread_ts}", record_failure_reason(err), self.doc_id(channel_id, thread_ts))
            return None

    def _thread_document(
        self,
        channel_id: str,
        channel_name: str,
        thread_ts: str,
        messages: list[dict],
        url: str,
        user_name: Callable[[str], str],
        channel_label: Callable[[str], str],
        report: ExtractReport,
    ) -> Document | None:
        doc_id = self.doc_id(channel_id, thread_ts)
        kept = sorted((m for m in messages if is_conversation(m)), key=lambda m: ts_float(m["ts"]))
        # Edited messages and overlapping pages can repeat a ts: keep its last version.
        kept = list({m["ts"]: m for m in kept}.values())
        item = f"#{channel_name} thread {thread_ts}"
        if not kept and len(messages) == 1:
            return None  # a lone join, leave or bot message: channel noise, not a thread
        report.seen += 1
        if not kept:
            report.skip(item, "no messages from people (joins, bots or empty)", doc_id)
            return None
        parts = []
        speakers = []
        for message in kept:
            speaker = user_name(message.get("user") or "") if message.get("user") else (message.get("username") or "unknown")
            speakers.append(speaker)
            when = ts_time(message["ts"]).strftime("%Y-%m-%d %H:%M UTC")
            body = slack_to_markdown(message.get("text") or "", user_name, channel_label)
            parts.append(f"**{speaker}** · {when}\n\n{body}")
        first_line = re.sub(
            r"[*_`~]", "", slack_to_markdown(kept[0].get("text") or "", user_name, channel_label).split("\n", 1)[0]
        ).strip()
        if len(first_line) > TITLE_CHARS:
            first_line = first_line[: TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"
        return Document(
            doc_id=doc_id,
            source_id=self.id,
            kind=self.kind,
            title=f"#{channel_name}: {first_line or 'thread'}",
            content="\n\n".join(parts),
            url=url,
            updated_at=ts_time(max(ts_float(m["ts"]) for m in kept)),
            metadata={
                "channel_id": channel_id,
                "channel": channel_name,
                "thread_ts": thread_ts,
                "replies": len(kept) - 1,
                "participants": sorted(set(speakers)),
            },
        )


# --- live ------------------------------------------------------------------------------------


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


class _LiveReader:
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
            except Exception as err:  # noqa: BLE001 - any hook problem: name the connection
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


# --- export ----------------------------------------------------------------------------------


class ExportFileTooLarge(ValueError):
    """A file of the export would expand past the limits (a zip bomb, or not a Slack export)."""


class _ExportFiles:
    """The files of an export folder or zip, by their path inside the export. Every file is read
    within MAX_EXPORT_FILE_BYTES, and a zip member whose declared size or compression ratio is
    beyond the limits is refused without inflating it."""

    def __init__(self, root: Path):
        self.root = root
        self.zip = zipfile.ZipFile(root) if root.is_file() else None
        self.refused: dict[str, str] = {}  # member -> why it is not read
        if self.zip:
            for info in self.zip.infolist():
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > MAX_EXPORT_FILE_BYTES:
                    self.refused[info.filename] = f"expands to {info.file_size} bytes, more than {MAX_EXPORT_FILE_BYTES}"
                elif info.file_size > RATIO_CHECKED_ABOVE_BYTES and ratio > MAX_COMPRESSION_RATIO:
                    self.refused[info.filename] = (
                        f"expands {ratio:.0f} times ({info.compress_size} bytes to {info.file_size}), "
                        f"more than {MAX_COMPRESSION_RATIO} times: not read (a zip bomb?)"
                    )
        names = self.zip.namelist() if self.zip else [p.relative_to(root).as_posix() for p in root.rglob("*.json") if p.is_file()]
        # A zip made by compressing the export folder holds it one level down.
        prefix = ""
        if "channels.json" not in names:
            found = sorted((n for n in names if PurePosixPath(n).name == "channels.json"), key=len)
            if found:
                prefix = found[0][: -len("channels.json")]
        self.prefix = prefix
        self.names = sorted(n[len(prefix) :] for n in names if n.startswith(prefix) and n.endswith(".json"))

    def exists(self, name: str) -> bool:
        return name in self.names

    def read_json(self, name: str) -> Any:
        full = self.prefix + name
        if full in self.refused:
            raise ExportFileTooLarge(f"{full} in {self.root.name} {self.refused[full]}")
        with self.zip.open(full) if self.zip else (self.root / full).open("rb") as handle:
            data = handle.read(MAX_EXPORT_FILE_BYTES + 1)  # a header that lies is cut off here
        if len(data) > MAX_EXPORT_FILE_BYTES:
            raise ExportFileTooLarge(f"{full} in {self.root.name} is larger than {MAX_EXPORT_FILE_BYTES} bytes: not read")
        return json.loads(data.decode("utf-8-sig"))

    def day_files(self, folder: str) -> list[str]:
        return [n for n in self.names if n.startswith(folder + "/") and n.count("/") == 1]

    def close(self) -> None:
        if self.zip:
            self.zip.close()


class _ExportReader:
    def __init__(self, source: SlackSource, report: ExtractReport):
        self.source = source
        self.report = report
        self.users: dict[str, str] = {}
        self.channel_names: dict[str, str] = {}

    def user_name(self, user_id: str) -> str:
        return self.users.get(user_id, user_id)

    def channel_label(self, channel_id: str) -> str:
        return self.channel_names.get(channel_id, channel_id)

    def read(self) -> Iterator[Document]:
        root = self.source.export_path
        try:
            files = _ExportFiles(root)
        except (OSError, zipfile.BadZipFile) as err:
            raise SourceError(f"source {self.source.id!r}: cannot open the Slack export {root}: {err}") from None
        try:
            yield from self._read(files, root)
        finally:
            files.close()

    def _read(self, files: _ExportFiles, root: Path) -> Iterator[Document]:
        if not files.exists("channels.json"):
            raise SourceError(f"source {self.source.id!r}: {root} is not a Slack export (no channels.json)")
        try:
            channels = files.read_json("channels.json")
            if not isinstance(channels, list):
                raise ValueError("not a list of channels")
        except ExportFileTooLarge as err:
            raise SourceError(f"source {self.source.id!r}: {err}") from None
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise SourceError(f"source {self.source.id!r}: {root}/channels.json is malformed: {err}") from None
        if files.exists("users.json"):
            try:
                for user in files.read_json("users.json"):
                    self.users[user["id"]] = display_name(user, user["id"])
            except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError, RecursionError) as err:
                log.warning(
                    "%s: users.json in %s is malformed or too large (%s): speakers are shown by user id",
                    self.source.id,
                    root,
                    err,
                )
        else:
            log.warning("%s: the export %s has no users.json: speakers are shown by user id", self.source.id, root)
        listed = {}
        for channel in channels:
            if isinstance(channel, dict) and channel.get("id") and channel.get("name"):
                listed[channel["id"]] = channel["name"]
                self.channel_names[channel["id"]] = channel["name"]
        wanted = [c.strip().lstrip("#") for c in self.source.channels] or list(listed)
        by_name = {name: cid for cid, name in listed.items()}
        for channel in wanted:
            channel_id = channel if channel in listed else by_name.get(channel)
            if channel_id is None:
                self.report.fail(f"#{channel}", f"not in the export's channels.json ({root})")
                continue
            yield from self._read_channel(files, channel_id, listed[channel_id])

    def _read_channel(self, files: _ExportFiles, channel_id: str, name: str) -> Iterator[Document]:
        threads: dict[str, list[dict]] = {}
        team = ""
        for day_file in files.day_files(name):
            try:
                records = files.read_json(day_file)
                if not isinstance(records, list):
                    raise ValueError(f"expected a list of messages, found {type(records).__name__}")
            except ExportFileTooLarge as err:
                self.report.fail(day_file, str(err))
                continue
            except (ValueError, UnicodeDecodeError, RecursionError) as err:
                self.report.fail(
                    day_file, f"malformed day file: {record_failure_reason(err) if isinstance(err, RecursionError) else err}"
                )
                continue
            for number, message in enumerate(records):
                if not isinstance(message, dict) or not _valid_ts(message.get("ts")):
                    shown = json.dumps(message, default=str)[:80]
                    self.report.fail(f"{day_file} record {number}", f"not a message with a ts: {shown}")
                    continue
                if message.get("thread_ts") is not None and not _valid_ts(message.get("thread_ts")):
                    self.report.fail(f"{day_file} record {number}", f"bad thread_ts {message.get('thread_ts')!r}")
                    continue
                team = team or message.get("team") or message.get("user_team") or ""
                threads.setdefault(message.get("thread_ts") or message["ts"], []).append(message)
        for thread_ts, messages in sorted(threads.items(), key=lambda item: ts_float(item[0])):
            document = self.source.thread_document(
                channel_id,
                name,
                thread_ts,
                messages,
                export_permalink(team, channel_id, thread_ts),
                self.user_name,
                self.channel_label,
                self.report,
            )
            if document:
                yield document


def _valid_ts(value: Any) -> bool:
    try:
        float(value)
        return isinstance(value, str)
    except (TypeError, ValueError):
        return False


def export_permalink(team: str, channel_id: str, thread_ts: str) -> str:
    """An export does not say the workspace's domain; Slack's web client opens a thread by team id."""
    if team:
        return f"https://app.slack.com/client/{team}/{channel_id}/thread/{channel_id}-{thread_ts}"
    return archive_permalink("https://slack.com", channel_id, thread_ts)
