"""The service registry: every service declared once, paths never claimed twice, the CLI derived from it."""

from __future__ import annotations

import inspect

import pytest
from starlette.routing import Route, WebSocketRoute
from typer.testing import CliRunner

from gamemetrics import registry
from gamemetrics.cli import app as cli_app
from gamemetrics.cli import platform as cli
from gamemetrics.registry import SERVICES, ServiceSpec
from gamemetrics.services.notifier.eraser import NotificationsEraser
from gamemetrics.services.recommender.eraser import VectorsEraser
from gamemetrics.services.retention.eraser import ArchiveEraser
from gamemetrics.services.users.eraser import StoreEraser


async def _endpoint(request: object) -> None:
    return None


def test_names_are_unique_and_the_cli_serves_exactly_them() -> None:
    assert len(set(registry.NAMES)) == len(SERVICES)
    assert cli.SERVICES == registry.NAMES
    assert tuple(spec.name for spec in SERVICES if spec.kind in ("http", "both")) == cli.HTTP_SERVICES
    refused = CliRunner().invoke(cli_app, ["serve", "no-such-service"])
    assert refused.exit_code == 2
    for name in registry.NAMES:
        assert name in refused.output


def test_a_worker_service_cannot_share_a_process() -> None:
    refused = CliRunner().invoke(cli_app, ["serve", "ingest,processor"])
    assert refused.exit_code == 2 and "only HTTP services" in refused.output


def test_no_path_is_claimed_twice() -> None:
    assert registry.claim_conflicts() == []
    every = [prefix for spec in SERVICES for prefix in spec.paths]
    assert len(every) == len(set(every))


def test_overlapping_claims_are_found() -> None:
    a = ServiceSpec("a", "http", "x:y", "a", paths=("/v1/games",))
    b = ServiceSpec("b", "http", "x:y", "b", paths=("/v1/games/{game_id}/items",))
    c = ServiceSpec("c", "http", "x:y", "c", paths=("/metrics",))
    assert registry.claim_conflicts([a, b]) == []  # a carve-out, served by the deeper claim
    twice = ServiceSpec("e", "http", "x:y", "e", paths=("/v1/games/{id}/items",))
    assert registry.claim_conflicts([b, twice]) == [
        "'/v1/games/{game_id}/items' of b overlaps '/v1/games/{id}/items' of e"]
    assert registry.claim_conflicts([a, ServiceSpec("f", "http", "x:y", "f", paths=("/v1/games",))]) == [
        "'/v1/games' of a overlaps '/v1/games' of f"]
    assert registry.claim_conflicts([c]) == ["'/metrics' of the platform overlaps '/metrics' of c"]
    assert registry.claim_conflicts([a, ServiceSpec("d", "http", "x:y", "d", paths=("/v1/gamesx",))]) == []


def test_parameter_segments_of_a_prefix_match_one_segment() -> None:
    prefix = "/v1/games/{game_id}/notification-rules"
    assert registry.owns(prefix, "/v1/games/abc/notification-rules/first-buy")
    assert registry.owns(prefix, "/v1/games/abc/notification-rules")
    assert not registry.owns(prefix, "/v1/games//notification-rules")
    assert not registry.owns(prefix, "/v1/games/abc/notification-rulesx")
    assert not registry.owns(prefix, "/v1/games/abc")
    assert registry.owns("/v1/games", "/v1/games/abc/notification-rules")
    assert registry.owns("/v1/a.b/{x}", "/v1/a.b/y") and not registry.owns("/v1/a.b/{x}", "/v1/aXb/y")  # literal
    assert registry.owns("/v1/games/{game_id}/items", "/v1/games/{id}/items")  # how claims are compared
    assert registry.specificity(prefix) > registry.specificity("/v1/games")  # the deeper claim serves


def test_http_services_own_paths_and_worker_services_none() -> None:
    for spec in SERVICES:
        assert bool(spec.paths) == spec.serves_http, spec.name
        assert all(prefix.startswith("/") for prefix in spec.paths), spec.name


def test_every_builder_imports_and_takes_adapters_and_settings() -> None:
    for spec in SERVICES:
        builder = spec.load()
        assert list(inspect.signature(builder).parameters) == ["adapters", "settings"], spec.name


def test_templated_claims_own_paths_below_them() -> None:
    items = "/v1/games/{game_id}/items"
    assert registry.owns(items, "/v1/games/5d3c/items") and registry.owns(items, "/v1/games/5d3c/items/sword")
    assert not registry.owns(items, "/v1/games/5d3c/itemsx") and not registry.owns(items, "/v1/games//items")
    assert not registry.owns(items, "/v1/games/5d3c") and not registry.owns(items, "/v1/games/5d3c/players/p")


def test_routes_hidden_by_a_carve_out_are_named() -> None:
    a = ServiceSpec("a", "http", "x:y", "a", paths=("/v1/games",))
    b = ServiceSpec("b", "http", "x:y", "b", paths=("/v1/games/{game_id}/items",))
    routes = [Route("/v1/games/{game_id}/players", _endpoint), Route("/v1/games/{game_id}/items/{x}", _endpoint)]
    assert registry.shadowed_routes(a, routes, [a, b]) == [
        "/v1/games/{game_id}/items/{x} (under /v1/games/{game_id}/items of b)"]
    assert registry.shadowed_routes(b, routes[1:], [a, b]) == []


def test_stray_routes_are_named() -> None:
    users = registry.service("users")
    routes = [Route("/v1/games/{game_id}/players", _endpoint), Route("/v1/gamesx", _endpoint),
              WebSocketRoute("/oauth/stream", _endpoint), Route("/graphql", _endpoint)]
    assert registry.stray_routes(users, routes) == ["/v1/gamesx", "/graphql"]


def test_the_gdpr_stores_are_the_ones_an_erasure_waits_for() -> None:
    assert sorted(registry.gdpr_stores()) == sorted([*StoreEraser.stores, *NotificationsEraser.stores,
                                                     *VectorsEraser.stores, *ArchiveEraser.stores])


def test_unknown_service_names_the_choices() -> None:
    with pytest.raises(KeyError, match=", ".join(registry.NAMES)):
        registry.service("nope")


def test_every_gdpr_export_names_a_function_of_its_own_service() -> None:
    import importlib

    for spec in registry.SERVICES:
        if spec.gdpr_export:
            module, _, function = spec.gdpr_export.partition(":")
            assert module.startswith(f"gamemetrics.services.{spec.name}."), spec.gdpr_export
            assert callable(getattr(importlib.import_module(module), function)), spec.gdpr_export
    assert [name for name, _ in registry.player_exports()] == ["notifier"]
