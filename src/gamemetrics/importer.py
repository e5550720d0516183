"""`gamemetrics import`: history from a file through `POST /v1/import`.

Two formats: NDJSON of native events, or a Segment export (one message per line, or a JSON
object `{"batch": [...]}`), mapped with the same code as the Segment-compatible endpoints. Event
ids come from the file (`event_id`, or Segment's `messageId`), so importing a file twice stores
its events once. A `.gz` file is read through gzip.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BufferedIOBase, BufferedReader
from pathlib import Path
from typing import Any, Literal

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from gamemetrics.services.ingest.segment import SegmentMessageError, to_native
from gamemetrics.simulator.sender import MAX_BODY_BYTES, EventSender, batched, http_client

Format = Literal["auto", "ndjson", "segment"]
FORMATS: tuple[Format, ...] = ("auto", "ndjson", "segment")
KEEP_REJECTIONS = 20
_encode = msgspec.json.Encoder().encode
_BOM = b"\xef\xbb\xbf"


class ImportFileError(ValueError):
    """A file that cannot be read as the format asked for."""


@dataclass(slots=True)
class ImportReport:
    """What happened to a file: events sent and accepted, and the first places where records were rejected."""

    path: Path
    format: str
    lines: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    _first: list[tuple[int, str]] = field(default_factory=list)  # a max-heap on position, bounded

    def reject(self, item: Item, error: str) -> None:
        self.rejected += 1
        entry = (-item.position, f"{item.where}: {error}")
        if len(self._first) < KEEP_REJECTIONS:
            heapq.heappush(self._first, entry)
        elif entry > self._first[0]:
            heapq.heapreplace(self._first, entry)

    @property
    def rejections(self) -> list[str]:
        """The earliest rejected records in file order, at most KEEP_REJECTIONS of them."""
        return [text for _, text in sorted(self._first, reverse=True)]


@dataclass(frozen=True, slots=True)
class Item:
    """One record of the file: where it was, and its native event JSON or why it has none."""

    position: int
    where: str
    event: bytes | None
    error: str | None = None


def import_file(path: Path, *, url: str, write_key: str, fmt: Format = "auto",
                console: Console | None = None) -> ImportReport:
    """Send every event of `path` through /v1/import; refusals are counted and named, not fatal."""
    console = console or Console(stderr=True)
    kind = detect_format(path) if fmt == "auto" else _shape(path, fmt)
    report = ImportReport(path, kind)
    total = path.stat().st_size
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[note]}"),
               TimeRemainingColumn())
    with http_client(url) as client, _open(path) as (raw, stream), Progress(*columns, console=console) as progress:
        task = progress.add_task(f"import {path.name}", total=total, note="")
        sender = EventSender(client, path="/v1/import", write_key=write_key)
        for batch in batched(_accepted_locally(read_items(stream, kind), report)):
            answer = sender.post(batch.bodies)
            report.sent += len(batch.bodies)
            report.accepted += answer.accepted
            for index, error in answer.rejected:
                report.reject(batch.sources[index], error)
            progress.update(task, completed=raw.tell(), note=f"accepted {report.accepted}  rejected {report.rejected}")
        progress.update(task, completed=total)
        report.retries = sender.tally.retries
    return report


def read_items(stream: BufferedIOBase, kind: str) -> Iterator[Item]:
    """The file's records as native event JSON, each with its line number (or batch index)."""
    if kind == "segment-batch":
        try:
            payload = msgspec.json.decode(stream.read())
        except msgspec.DecodeError as exc:
            raise ImportFileError(f"file is not valid JSON: {exc}") from None
        messages = payload.get("batch") if isinstance(payload, dict) else None
        if not isinstance(messages, list):
            raise ImportFileError('a Segment batch file must be a JSON object {"batch": [...]}')
        for index, message in enumerate(messages):
            yield _segment_item(index, f"batch[{index}]", message)
        return
    for number, line in enumerate(stream, 1):
        line = line.strip().removeprefix(_BOM) if number == 1 else line.strip()
        if not line:
            continue
        try:
            value = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            yield Item(number, f"line {number}", None, f"not valid JSON: {exc}")
            continue
        if kind == "segment":
            yield _segment_item(number, f"line {number}", value)
        elif not isinstance(value, dict):
            yield Item(number, f"line {number}", None, "a line must hold one JSON object (a native event)")
        else:
            # The line goes out as written: the server reads it exactly as the game would have sent it.
            yield Item(number, f"line {number}", line)


def detect_format(path: Path) -> str:
    """`ndjson`, `segment` (one message per line) or `segment-batch`, from the first record."""
    first = _first_record(path)
    if isinstance(first, dict):
        if "batch" in first:
            return "segment-batch"
        if "event_type" in first or "event_id" in first:
            return "ndjson"
        if "messageId" in first or ("type" in first and ("userId" in first or "anonymousId" in first)):
            return "segment"
    raise ImportFileError(
        f"cannot tell the format of {path.name} from its first record; pass --format ndjson or --format segment"
    )


def _shape(path: Path, fmt: str) -> str:
    if fmt == "ndjson":
        return "ndjson"
    if fmt != "segment":
        raise ImportFileError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    first = _first_record(path)
    return "segment-batch" if isinstance(first, dict) and "batch" in first else "segment"


def _first_record(path: Path) -> Any:
    """The first line as JSON, or the whole file when it is one (pretty-printed) JSON document."""
    with _open(path) as (_, stream):
        for line in stream:
            line = line.strip().removeprefix(_BOM)
            if line:
                try:
                    return msgspec.json.decode(line)
                except msgspec.DecodeError:
                    break
        else:
            raise ImportFileError(f"{path.name} holds no records")
    with _open(path) as (_, stream):
        try:
            return msgspec.json.decode(stream.read().removeprefix(_BOM))
        except msgspec.DecodeError:
            return None


def _segment_item(position: int, where: str, message: Any) -> Item:
    try:
        return Item(position, where, _encode(to_native(_as_export(message))))
    except SegmentMessageError as exc:
        return Item(position, where, None, str(exc))


def _as_export(message: Any) -> Any:
    """An exported message's times are final: drop `sentAt`, whose skew correction is for live traffic."""
    if not isinstance(message, dict):
        return message
    exported = {k: v for k, v in message.items() if k != "sentAt"}
    if not exported.get("timestamp") and not exported.get("originalTimestamp") and exported.get("receivedAt"):
        exported["timestamp"] = exported["receivedAt"]
    return exported


def _accepted_locally(items: Iterator[Item], report: ImportReport) -> Iterator[tuple[bytes, Item]]:
    """Records that can go to the server; the others are rejected here with their place in the file."""
    limit = MAX_BODY_BYTES - 64
    for item in items:
        report.lines += 1
        if item.event is None:
            report.reject(item, item.error or "unreadable")
        elif len(item.event) > limit:
            report.reject(item, f"event is {len(item.event)} bytes; a request may carry at most {limit}")
        else:
            yield item.event, item


@contextmanager
def _open(path: Path) -> Iterator[tuple[BufferedReader, BufferedIOBase]]:
    """The file, and a reader over it (through gzip for `.gz`); `raw.tell()` is progress in file bytes."""
    with open(path, "rb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw) as inflated:
                yield raw, inflated
        else:
            yield raw, raw


def print_report(report: ImportReport, console: Console) -> None:
    """A summary, and the first rejected records with their line and reason."""
    retried = f" ({report.retries} requests retried)" if report.retries else ""
    console.print(f"imported {report.path.name} ({report.format}): {report.lines} records, sent {report.sent},"
                  f" accepted {report.accepted}, rejected {report.rejected}{retried}",
                  markup=False, highlight=False, soft_wrap=True)
    for rejection in report.rejections:
        console.print("  [red]rejected[/] " + escape(rejection), highlight=False, soft_wrap=True)
    if report.rejected > len(report.rejections):
        console.print(f"  ... and {report.rejected - len(report.rejections)} more", highlight=False)
