"""The Slack export reader: a workspace export folder or zip, read whole every run, every file
within size and compression-ratio limits (see the package docstring for the rules)."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from collections.abc import Iterator

from ragloop.documents import Document
from ragloop.sources.base import ExtractReport, SourceError, record_failure_reason
from ragloop.sources.slack.messages import archive_permalink, display_name, ts_float

if TYPE_CHECKING:
    from ragloop.sources.slack import SlackSource

log = logging.getLogger(__name__)

# What one file of an export may expand to, and how much more than its compressed size: a real
# export's JSON compresses 5-20 times; a zip bomb (a few hundred KB that inflate to gigabytes)
# is refused before it is inflated, and a member whose header lies is cut off at the limit.
MAX_EXPORT_FILE_BYTES = 128 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
RATIO_CHECKED_ABOVE_BYTES = 1024 * 1024  # small files may compress far better, harmlessly


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


class ExportReader:
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
