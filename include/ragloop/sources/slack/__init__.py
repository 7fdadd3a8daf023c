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

import logging
import re
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Callable, Iterator

from ragloop.documents import Document
from ragloop.sources.base import ApiSource, ExtractReport, SourceConfigError, check_whole_number, record_failure_reason
from ragloop.sources.slack.export import ExportReader
from ragloop.sources.slack.live import LiveReader, slack_client
from ragloop.sources.slack.messages import is_conversation, slack_to_markdown, ts_float, ts_time

log = logging.getLogger(__name__)

__all__ = ["SlackSource", "slack_client"]

DEFAULT_LOOKBACK_DAYS = 14
TITLE_CHARS = 90


class SlackSource(ApiSource):
    type = "slack"
    kind = "slack"
    export_kind = "a Slack workspace export folder or zip"
    config_keys: ClassVar[dict[str, tuple[Any, bool]]] = {
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
            yield from LiveReader(self, report).read(watermarks, full_listing)
        else:
            yield from ExportReader(self, report).read()

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
