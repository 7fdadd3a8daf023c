"""Slack messages as ragloop reads them: which are conversation, their text as markdown,
timestamps, speakers' names and permalinks. Shared by the live and the export readers."""

from __future__ import annotations

import html
import re
from datetime import datetime, UTC
from typing import Any
from collections.abc import Callable

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


def ts_float(ts: Any) -> float:
    return float(ts)


def ts_time(ts: Any) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=UTC)


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
    for code, prose in zip(parts[1::2], parts[2::2], strict=False):
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
