"""The Objects port's contract, on both adapters: a local directory, and a real S3-compatible server
(S3Proxy) on loopback, with signed requests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from gamemetrics.adapters.objects.store import ObjectStore, local_objects, make_objects, s3_objects
from gamemetrics.ports.objects import ObjectNotFound, ObjectStoreError
from gamemetrics.settings import ObjectSettings
from tests.s3_server import S3Server


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return local_objects(tmp_path / "objects")
    server: S3Server = request.getfixturevalue("s3_server")
    return s3_objects(server.settings(f"run-{uuid.uuid4().hex[:10]}/archives"))


async def test_put_get_replace(objects: ObjectStore) -> None:
    key = "tenant-a/events/2026-11-30.parquet"
    assert not await objects.exists(key)
    await objects.put(key, b"PAR1 first")
    assert await objects.exists(key)
    assert await objects.get(key) == b"PAR1 first"
    await objects.put(key, b"PAR1 second, longer")
    assert await objects.get(key) == b"PAR1 second, longer"


async def test_missing_objects(objects: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        await objects.get("nowhere/none.parquet")
    with pytest.raises(ObjectNotFound):
        await objects.download("nowhere/none.parquet", tmp_path / "none")
    await objects.delete("nowhere/none.parquet")


async def test_list_by_prefix_sorted_with_sizes(objects: ObjectStore) -> None:
    await objects.put("tenant-b/events/2026-11-02.parquet", b"22")
    await objects.put("tenant-b/events/2026-11-01.parquet", b"1")
    await objects.put("tenant-bb/events/2026-11-01.parquet", b"333")
    await objects.put("tenant-c/exports/x.json", b"{}")
    listed = await objects.list("tenant-b/")
    assert [(o.key, o.size) for o in listed] == [
        ("tenant-b/events/2026-11-01.parquet", 1), ("tenant-b/events/2026-11-02.parquet", 2)]
    assert [o.key for o in await objects.list("tenant-b")] == [
        "tenant-b/events/2026-11-01.parquet", "tenant-b/events/2026-11-02.parquet",
        "tenant-bb/events/2026-11-01.parquet"]
    assert [o.key for o in await objects.list("tenant-b/events/2026-11-0")] == [
        "tenant-b/events/2026-11-01.parquet", "tenant-b/events/2026-11-02.parquet"]
    assert len(await objects.list()) == 4
    assert await objects.list("tenant-z/") == []


async def test_delete(objects: ObjectStore) -> None:
    await objects.put("erase/me", b"player data")
    await objects.put("erase/keep", b"other data")
    await objects.delete("erase/me")
    assert not await objects.exists("erase/me")
    assert [o.key for o in await objects.list("erase/")] == ["erase/keep"]


async def test_files_stream_both_ways(objects: ObjectStore, tmp_path: Path) -> None:
    # Larger than one multipart part, so the upload is streamed in parts.
    data = os.urandom(6 * 1024 * 1024 + 123)
    source = tmp_path / "day.parquet"
    source.write_bytes(data)
    await objects.put("archives/day.parquet", source)
    destination = tmp_path / "back.parquet"
    await objects.download("archives/day.parquet", destination)
    assert destination.read_bytes() == data
    assert [o.size for o in await objects.list("archives/")] == [len(data)]


async def test_s3_refuses_wrong_credentials(s3_server: S3Server) -> None:
    settings = s3_server.settings("denied").model_copy(update={"s3_secret_access_key": SecretStr("wrong")})
    with pytest.raises(ObjectStoreError):
        await s3_objects(settings).put("k", b"v")


def test_settings_choose_the_adapter(tmp_path: Path) -> None:
    local = make_objects(ObjectSettings(), tmp_path)
    assert (tmp_path / "objects").is_dir() and isinstance(local, ObjectStore)
    with pytest.raises(ValueError, match="s3://bucket"):
        make_objects(ObjectSettings(archive_url="https://bucket/prefix"), tmp_path)
