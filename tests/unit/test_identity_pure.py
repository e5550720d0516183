"""The pure parts of the identity work, with plain data: merge patches (RFC 7396), client
authentication parsing (RFC 6749 §2.3.1), tombstones, sealed erasure requests, audit canonical form."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamemetrics.audit.chain import AuditEntry, canonical
from gamemetrics.events.gdpr_requests import ErasureRequest, RequestCodec
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.services.users.oauth import client_credentials
from gamemetrics.services.users.players import check_traits, merge_patch
from gamemetrics.web.errors import ApiError

# The examples of RFC 7396, appendix A.
RFC_7396 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7396)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                        max_size=3), max_leaves=10)


@given(json_values, st.dictionaries(st.text(max_size=3), json_values, max_size=4))
def test_merge_patch_is_idempotent_and_leaves_no_nulls_it_was_given(target: Any, patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    for key, value in patch.items():
        assert key not in once if value is None else key in once


def test_traits_are_bounded() -> None:
    assert check_traits({"a": {"b": 1}}, max_bytes=100, max_depth=2) == {"a": {"b": 1}}
    for traits, limits in [([1], {}), ({"a": {"b": {"c": 1}}}, {"max_depth": 2}), ({"a": "x" * 200}, {}),
                           ({"a": "\x00"}, {})]:
        with pytest.raises(ApiError):
            check_traits(traits, **{"max_bytes": 100, "max_depth": 8, **limits})


def _basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


def test_client_credentials_from_basic_are_form_decoded() -> None:
    found = client_credentials(_basic("gmc_a%3Ab:s%2Bcret+x"), {})
    assert (found.client_id, found.client_secret, found.basic) == ("gmc_a:b", "s+cret x", True)
    form = client_credentials("", {"client_id": ["gmc_a"], "client_secret": ["s"]})
    assert (form.client_id, form.client_secret, form.basic) == ("gmc_a", "s", False)


@pytest.mark.parametrize(("authorization", "form", "status", "error"), [
    ("", {}, 401, "invalid_client"),
    (_basic("no-colon"), {}, 401, "invalid_client"),
    ("Basic !!!", {}, 401, "invalid_client"),
    (_basic("a:b"), {"client_id": ["a"]}, 400, "invalid_request"),
    ("", {"client_id": ["a"]}, 401, "invalid_client"),
])
def test_client_credentials_refusals(authorization: str, form: dict[str, list[str]], status: int,
                                     error: str) -> None:
    with pytest.raises(ApiError) as refused:
        client_credentials(authorization, form)
    assert (refused.value.status, refused.value.code) == (status, error)


def test_tombstones_are_keyed_and_per_game() -> None:
    tenant, game = uuid.uuid4(), uuid.uuid4()
    one, other = Tombstones(b"a" * 48), Tombstones(b"b" * 48)
    assert one.player_hash(tenant, game, "p") == one.player_hash(tenant, game, "p")
    assert one.player_hash(tenant, game, "p") != other.player_hash(tenant, game, "p")
    assert one.player_hash(tenant, game, "p") != one.player_hash(tenant, uuid.uuid4(), "p")
    assert one.player_hash(tenant, game, "p").hex() != "p"
    assert set(one.hashes([(tenant, game, "p"), (tenant, game, "p"), (tenant, game, "q")]).values()) == {
        (tenant, game, "p"), (tenant, game, "q")}


def test_erasure_requests_carry_the_player_sealed() -> None:
    request = ErasureRequest(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "ply-Ünï/42", "client:x", datetime.now(UTC))
    codec = RequestCodec(b"k" * 48)
    message = codec.encode(request, b"h" * 32)
    assert b"ply" not in message.value and b"ply" not in message.key
    assert codec.decode(message.value) == request
    with pytest.raises(ValueError, match="unreadable"):
        RequestCodec(b"z" * 48).decode(message.value)
    with pytest.raises(ValueError, match="unreadable"):
        codec.decode(message.value.replace(b'"erasure_id":"', b'"erasure_id":"0', 1)[:-2] + b"}")


def test_audit_canonical_form_survives_a_time_zone_round_trip() -> None:
    entry = AuditEntry("cli:ops", "client.created", uuid.uuid4(), "gmc_x", {"scopes": ["a", "b"], "n": 1})
    at = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
    assert canonical(at, entry) == canonical(at.astimezone(timezone(timedelta(hours=5))), entry)
    assert canonical(at, entry) != canonical(at + timedelta(microseconds=1), entry)
