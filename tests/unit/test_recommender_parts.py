"""The recommender's pure parts on plain data: interactions from processed events, item documents,
query strings, the weight expression, the interaction matrix and the ranking of a trained model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from gamemetrics.events.processed import ProcessedEvent
from gamemetrics.services.recommender.catalogue import InvalidItem, check_item_id, read_item
from gamemetrics.services.recommender.factors import Factors, matrix, top_items
from gamemetrics.services.recommender.http import read_query
from gamemetrics.services.recommender.interactions import interactions_of, weights_sql
from gamemetrics.web.errors import ApiError

T, G = uuid.uuid4(), uuid.uuid4()


def _event(event_type: str, properties: object) -> ProcessedEvent:
    now = datetime.now(UTC)
    return ProcessedEvent(T, G, uuid.uuid4(), event_type, "p1", now, now, "api", False,
                          msgspec.Raw(msgspec.json.encode(properties)), msgspec.Raw(b"{}"), country="DE")


def test_interactions_are_item_events_that_name_an_item() -> None:
    events = [_event("purchase", {"item_id": "sword", "price": 1}), _event("level_complete", {"item_id": "x"}),
              _event("item_used", {"quantity": 1}), _event("item_acquired", {"item_id": ""}),
              _event("item_acquired", {"item_id": 5}), _event("item_used", {"item_id": "potion"})]
    found = interactions_of(events)
    assert [(i.item_id, i.event_type, i.country) for i in found] == [("sword", "purchase", "DE"),
                                                                     ("potion", "item_used", "DE")]
    assert found[0].event_id == events[0].event_id


def test_item_documents_are_checked() -> None:
    item = read_item(b'{"category": "weapon", "price": 2.5, "tags": ["a"], "available": false}')
    assert (item.category, float(item.price or 0), item.tags, item.available) == ("weapon", 2.5, ["a"], False)
    assert read_item(b"{}").available is True
    for bad in (b'{"price": -0.01}', b'{"price": "NaN"}', b'{"extra": 1}', b'{"tags": [1]}', b"[]", b"{",
                b'{"category": ""}', b'{"tags": ' + msgspec.json.encode(["t"] * 33) + b"}"):
        with pytest.raises(InvalidItem):
            read_item(bad)
    for bad_id in ("", "x" * 257, "nul\x00"):
        with pytest.raises(InvalidItem):
            check_item_id(bad_id)


def _request(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []})


def test_query_strings_are_read_or_refused() -> None:
    query = read_query(_request("n=5&category=weapon&min_price=1&max_price=3.5&country=FR"))
    assert (query.n, query.category, query.min_price, query.max_price, query.country) == (5, "weapon", 1, 3.5, "FR")
    assert read_query(_request("")).n == 10
    for bad in ("n=0", "n=101", "n=1.5", "min_price=-1", "max_price=inf", "min_price=4&max_price=3", "x=1"):
        with pytest.raises(ApiError) as refused:
            read_query(_request(bad))
        assert refused.value.status == 400 and refused.value.message


def test_the_weight_expression_names_each_event_type() -> None:
    case, params = weights_sql({"purchase": 4.0, "item_used": 0.5})
    assert case == "(CASE event_type WHEN %s THEN %s::real WHEN %s THEN %s::real ELSE 0 END)"
    assert params == ["purchase", 4.0, "item_used", 0.5]


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("wxyz"), st.floats(0.5, 5)), min_size=1))
def test_the_matrix_sums_each_players_weights_per_item(triples: list[tuple[str, str, float]]) -> None:
    m = matrix(triples)
    for player in set(p for p, _, _ in triples):
        for item in set(i for _, i, _ in triples):
            expected = sum(w for p, i, w in triples if (p, i) == (player, item))
            got = m.weights[m.players.index(player), m.items.index(item)]
            assert got == pytest.approx(expected, rel=1e-5)


def test_top_items_rank_by_dot_product_without_the_excluded() -> None:
    factors = Factors(["p"], ["a", "b", "c", "d"], np.array([[1.0, 0.0]], np.float32),
                      np.array([[0.1, 0], [0.9, 0], [0.5, 0], [0.7, 0]], np.float32))
    assert top_items(factors, 0, 2, set()) == [1, 3]
    assert top_items(factors, 0, 3, {1}) == [3, 2, 0]
    assert top_items(factors, 0, 10, set()) == [1, 3, 2, 0]


def test_a_record_of_an_unknown_schema_is_skipped_and_counted() -> None:
    from prometheus_client import REGISTRY

    from gamemetrics.events.processed import HEADERS
    from gamemetrics.ports.bus import Record
    from gamemetrics.services.recommender.worker import decode

    good = msgspec.json.encode(_event("purchase", {"item_id": "sword", "price": 1}))
    before = REGISTRY.get_sample_value("gamemetrics_recommender_events_skipped_total") or 0.0
    records = [Record("player.events.processed", 0, 1, b"k", good, HEADERS),
               Record("player.events.processed", 0, 2, b"k", good, {"schema_version": "9"}),
               Record("player.events.processed", 0, 3, b"k", b"{", HEADERS)]
    assert [i.item_id for i in decode(records)] == ["sword"]
    assert REGISTRY.get_sample_value("gamemetrics_recommender_events_skipped_total") == before + 2
