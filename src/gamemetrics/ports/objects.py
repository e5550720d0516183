"""The Objects port: named blobs (Parquet archives, exports) in a directory or an S3 bucket.

Keys are `/`-separated paths such as `archives/<tenant>/events/2026-11-30.parquet`. A put is
atomic: a reader sees the whole old object or the whole new one, never a part. Large objects move
between the store and a local file without being held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


class ObjectNotFound(KeyError):
    """No object is stored under the key."""


class ObjectStoreError(Exception):
    """The store refused or could not be reached; the caller retries later."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object."""

    key: str
    size: int
    modified: datetime


class Objects(Protocol):
    async def put(self, key: str, data: bytes | Path) -> None:
        """Store `data` (bytes, or the contents of a local file, streamed) under `key`, replacing any."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound when there is none."""
        ...

    async def download(self, key: str, destination: Path) -> None:
        """Stream the object into the local file `destination`; ObjectNotFound when there is none."""
        ...

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`, ordered by key."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; nothing happens if there is none."""
        ...
