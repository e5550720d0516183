"""The notifier's pure parts: full-jitter delays within their bounds and never before Retry-After,
rule conditions and buckets, templates' locale fallback, signed links and player tokens."""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamemetrics.services.notifier.delivery import retry_delay
from gamemetrics.services.notifier.player_tokens import BadPlayerToken, PlayerTokens
from gamemetrics.services.notifier.rules import RuleInvalid, parse_rule
from gamemetrics.services.notifier.templates import TemplateInvalid, parse_template, render
from gamemetrics.services.notifier.unsubscribe import BadLink, LinkSigner, Unsubscription


@given(st.integers(1, 80), st.floats(0.001, 10), st.floats(10, 1000), st.none() | st.floats(0, 5000),
       st.integers(0, 2**32))
def test_full_jitter_stays_within_its_ceiling_and_after_retry_after(
        attempts: int, initial: float, cap: float, after: float | None, seed: int) -> None:
    delay = retry_delay(attempts, initial, cap, after, random.Random(seed))
    assert delay >= (after or 0.0)
    assert delay <= max(min(cap, initial * 2 ** (attempts - 1)), after or 0.0)


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = [retry_delay(4, 1.0, 100.0, None, rng) for _ in range(2000)]
    assert min(delays) < 0.5 and max(delays) > 7.5  # uniform over [0, 8], not [4, 8]


def test_rule_conditions_and_buckets() -> None:
    rule = parse_rule("r", {"trigger": {"event_type": "purchase", "where": {
        "price": {"gte": 5}, "item.rarity": {"in": ["epic", "legendary"]}, "coupon": {"exists": False},
        "$country": "FI"}}, "template": "t"})
    event = {"country": "FI"}
    assert rule.matches("purchase", event, {"price": 9, "item": {"rarity": "epic"}})
    assert not rule.matches("purchase", event, {"price": 9, "item": {"rarity": "common"}})
    assert not rule.matches("purchase", event, {"price": "cheap", "item": {"rarity": "epic"}})
    assert not rule.matches("purchase", event, {"price": 9, "item": {"rarity": "epic"}, "coupon": "X"})
    assert not rule.matches("purchase", {"country": "SE"}, {"price": 9, "item": {"rarity": "epic"}})
    assert not rule.matches("level_fail", event, {"price": 9, "item": {"rarity": "epic"}})
    counted = parse_rule("c", {"trigger": {"event_type": "level_fail", "count": 3, "per": ["level"]},
                               "template": "t"})
    assert counted.bucket("s1", {"level": 4}) == counted.bucket("s1", {"level": 4, "score": 1})
    assert counted.bucket("s1", {"level": 4}) != counted.bucket("s1", {"level": "4"})
    assert counted.bucket("s1", {"level": 4}) != counted.bucket("s2", {"level": 4})
    with pytest.raises(RuleInvalid, match="unknown event type"):
        parse_rule("x", {"trigger": {"event_type": "nope"}, "template": "t"})


def test_locale_falls_back_from_region_to_language_to_default() -> None:
    template = parse_template("t", {"category": "c", "fallback_locale": "de", "content": {
        "in_app": {"title": "Hello", "body": "Hi {{ name }}"}},
        "locales": {"fi": {"in_app": {"title": "Hei"}}, "de": {"in_app": {"title": "Hallo"}}},
        "sample": {"name": "x"}})
    assert render(template, "in_app", "fi-FI", {"name": "Ada"}).subject == "Hei"
    assert render(template, "in_app", "fi-FI", {"name": "Ada"}).body == "Hi Ada"
    assert render(template, "in_app", "sv", {"name": "Ada"}).subject == "Hallo"
    with pytest.raises(TemplateInvalid, match="name"):
        render(template, "in_app", None, {})


def test_links_and_player_tokens_are_signed_and_expire() -> None:
    signer = LinkSigner(b"a" * 32, "https://play.example/")
    who = Unsubscription(uuid.uuid4(), uuid.uuid4(), "p|1\u00e9", "news")
    token = signer.token(who)
    assert signer.check(token) == who
    assert signer.url(who) == f"https://play.example/v1/notifications/unsubscribe/{token}"
    for forged in (token[:-2] + "AA", "x." + token.split(".")[1], "", "...", token.replace(".", "")):
        with pytest.raises(BadLink):
            signer.check(forged)
    with pytest.raises(BadLink):
        LinkSigner(b"b" * 32, "https://play.example").check(token)
    tokens = PlayerTokens(b"k" * 32, 60)
    claim = tokens.issue(who.tenant_id, who.game_id, "p1", now=1000.0)
    encoded = tokens.encode(claim)
    assert tokens.check(encoded, now=1059.0) == claim
    with pytest.raises(BadPlayerToken, match="expired"):
        tokens.check(encoded, now=1060.0)
    with pytest.raises(BadPlayerToken, match="not a player token"):
        PlayerTokens(b"j" * 32, 60).check(encoded, now=1000.0)
