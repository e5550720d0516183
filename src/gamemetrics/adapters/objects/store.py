"""Objects through `obstore`: one client library for both adapters, a local directory (the embedded
default, under the data dir) and an S3 bucket (AWS, MinIO or any S3-compatible server).

One module with two constructors, since the library gives both stores the same calls and the same
guarantees (atomic puts: a local put writes a temporary file and renames it; S3 PUTs are atomic).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError
from obstore.store import LocalStore, S3Store

from gamemetrics.ports.objects import ObjectInfo, ObjectNotFound, ObjectStoreError
from gamemetrics.settings import ObjectSettings

_CHUNK = 8 * 1024 * 1024
# The library raises its own errors, and the built-in FileNotFoundError (caught first) and OSError.
_FAILURES = (BaseError, OSError)


class ObjectStore:
    """The Objects port on an obstore store; `where` names it in errors.

    Every call is the library's blocking form run in a worker thread, not its `*_async` form: the
    async bridge hands results back from the library's own runtime threads, and a process that
    exits while one of them is still winding down is aborted (SIGABRT) now and then. Short-lived
    commands (`backup list`, `archive ...`) hit that under load; the blocking calls release the
    GIL, so a thread each costs no throughput.
    """

    def __init__(self, store: LocalStore | S3Store, where: str) -> None:
        self._store = store
        self._where = where

    async def put(self, key: str, data: bytes | Path) -> None:
        try:
            await asyncio.to_thread(obstore.put, self._store, key, data)
        except _FAILURES as exc:
            raise ObjectStoreError(f"could not store {key} in {self._where}: {exc}") from exc

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._read, key)
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key} in {self._where}") from None
        except _FAILURES as exc:
            raise ObjectStoreError(f"could not read {key} from {self._where}: {exc}") from exc

    def _read(self, key: str) -> bytes:
        return bytes(obstore.get(self._store, key).bytes())

    async def download(self, key: str, destination: Path) -> None:
        try:
            await asyncio.to_thread(self._download, key, destination)
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key} in {self._where}") from None
        except _FAILURES as exc:
            raise ObjectStoreError(f"could not read {key} from {self._where}: {exc}") from exc

    def _download(self, key: str, destination: Path) -> None:
        result = obstore.get(self._store, key)
        with destination.open("wb") as file:
            for chunk in result.stream(min_chunk_size=_CHUNK):
                file.write(chunk)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        try:
            found = await asyncio.to_thread(_listing, self._store, prefix)
        except FileNotFoundError:
            return []
        except _FAILURES as exc:
            raise ObjectStoreError(f"could not list {prefix!r} in {self._where}: {exc}") from exc
        return sorted(found, key=lambda info: info.key)

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(obstore.head, self._store, key)
        except FileNotFoundError:
            return False
        except _FAILURES as exc:
            raise ObjectStoreError(f"could not look up {key} in {self._where}: {exc}") from exc
        return True

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(obstore.delete, self._store, key)
        except FileNotFoundError:
            return
        except _FAILURES as exc:
            raise ObjectStoreError(f"could not delete {key} from {self._where}: {exc}") from exc


def _listing(store: LocalStore | S3Store, prefix: str) -> list[ObjectInfo]:
    # The library lists whole path segments; the port promises any string prefix, so list the
    # segments up to the last `/` and keep the keys that start with the rest.
    directory = prefix.rpartition("/")[0] or None
    return [ObjectInfo(meta["path"], meta["size"], meta["last_modified"])
            for chunk in obstore.list(store, directory) for meta in chunk if meta["path"].startswith(prefix)]


def local_objects(root: Path) -> ObjectStore:
    """Objects as files under `root`, made if missing."""
    root.mkdir(parents=True, exist_ok=True)
    return ObjectStore(LocalStore(root.resolve(), mkdir=True), str(root))


def s3_objects(settings: ObjectSettings) -> ObjectStore:
    """Objects in the bucket and under the prefix of `settings.archive_url` (s3://bucket/prefix)."""
    url = settings.archive_url or ""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"GAMEMETRICS_ARCHIVE_URL must look like s3://bucket/prefix, not {url!r}")
    endpoint = settings.s3_endpoint_url
    store = S3Store(
        parts.netloc, prefix=parts.path.strip("/") or None,
        config={
            "region": settings.s3_region,
            # One key at a time is a plain DELETE, which every S3-compatible server has; some lack
            # the multi-object delete the library would otherwise send.
            "disable_bulk_delete": True,
            # An S3-compatible server is addressed by path (its host names no buckets).
            **({"endpoint": endpoint, "virtual_hosted_style_request": False} if endpoint else {}),
            **({"access_key_id": settings.s3_access_key_id} if settings.s3_access_key_id else {}),
            **({"secret_access_key": settings.s3_secret_access_key.get_secret_value()}
               if settings.s3_secret_access_key else {}),
        },
        client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))},
        # 5xx answers, dropped connections and timeouts are retried with jittered backoff for this long.
        retry_config={"retry_timeout": timedelta(seconds=settings.s3_retry_seconds), "max_retries": 10,
                      "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5)}},
    )
    return ObjectStore(store, url)


def make_objects(settings: ObjectSettings, data_dir: Path) -> ObjectStore:
    """S3 when GAMEMETRICS_ARCHIVE_URL is set, else the directory data_dir/objects."""
    return s3_objects(settings) if settings.archive_url else local_objects(data_dir / "objects")
