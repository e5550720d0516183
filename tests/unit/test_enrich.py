"""Enrichment on plain data: context normalisation and purchase amounts in exact USD."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamemetrics.events.enrich import normalise_country, normalise_os, normalise_platform, revenue_usd
from gamemetrics.events.schema import Event
from gamemetrics.events.validation import InvalidEvent, Limits, decode_event
from gamemetrics.settings import DEFAULT_FX_RATES_USD

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_event_bytes=32 * 1024, max_depth=8, max_late=timedelta(days=7), max_future=timedelta(minutes=10))
RATES = {"USD": Decimal("1"), "EUR": Decimal("1.08"), "JPY": Decimal("0.0067"), "KRW": Decimal("0.00073")}
# The revenue columns are numeric(18, 6): six decimals, twelve digits before the point.
MICRO = Decimal("0.000001")
STORABLE = Decimal(10) ** 12


def event(event_type: str, **properties: Any) -> Event:
    return Event(uuid.uuid4(), event_type, "player-1", NOW, properties=msgspec.Raw(msgspec.json.encode(properties)))


def purchase(price: Any, currency: str, quantity: Any = None) -> Event:
    properties = {"item_id": "gems", "price": price, "currency": currency}
    if quantity is not None:
        properties["quantity"] = quantity
    return event("purchase", **properties)


# ---------------------------------------------------------------- context


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("iOS", "ios"), ("iPhone", "ios"), ("iPadOS", "ios"), ("Android", "android"),
        (" Steam ", "pc"), ("Windows", "pc"), ("macOS", "pc"), ("Linux", "pc"),
        ("WebGL", "web"), ("PS5", "playstation"), ("Xbox Series", "xbox"), ("Nintendo Switch", "switch"),
        ("Quest 3", "quest 3"), ("", None), (None, None),
    ],
)
def test_platform_spellings_map_to_one_name(sent: str | None, stored: str | None) -> None:
    assert normalise_platform(sent) == stored


def test_unknown_platform_is_kept_lowercased_and_bounded() -> None:
    assert normalise_platform("Z" * 300) == "z" * 64


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("iOS 17.2", "ios"), ("iPadOS 17", "ios"), ("Android 14", "android"), ("Windows 11", "windows"),
        ("Win10", "windows"), ("macOS 14.1", "macos"), ("Mac OS X 10.15", "macos"), ("OSX", "macos"),
        ("Linux 6.5", "linux"), ("HarmonyOS 4.0", "harmonyos"), ("", None), (None, None),
    ],
)
def test_os_loses_its_version(sent: str | None, stored: str | None) -> None:
    assert normalise_os(sent) == stored


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("de", "DE"), ("US", "US"), ("jP", "JP"), ("USA", None), ("D1", None), ("ÄÖ", None), ("", None), (None, None)],
)
def test_country_is_iso_alpha2_or_nothing(sent: str | None, stored: str | None) -> None:
    assert normalise_country(sent) == stored


# ---------------------------------------------------------------- revenue


@pytest.mark.parametrize(
    ("price", "currency", "quantity", "usd"),
    [
        (4.99, "EUR", None, "5.389200"),
        (0.99, "USD", 3, "2.970000"),
        (0.1, "USD", 3, "0.300000"),  # not 0.30000000000000004: the float's decimal text is used
        ("19.99", "usd", 2, "39.980000"),
        (1200, "JPY", 2, "16.080000"),
        (1100, "KRW", 1, "0.803000"),
        (0.0000004, "USD", 1, "0.000000"),  # below a micro-dollar rounds to nothing
        (0, "EUR", 5, "0.000000"),
    ],
)
def test_purchase_revenue_is_exact(price: Any, currency: str, quantity: Any, usd: str) -> None:
    amount = revenue_usd(purchase(price, currency, quantity), RATES)
    assert amount == Decimal(usd)
    assert amount is not None and amount.as_tuple().exponent == -6


def test_the_default_rates_cover_common_currencies() -> None:
    for currency in ("USD", "EUR", "GBP", "JPY", "KRW", "CNY", "BRL"):
        assert revenue_usd(purchase(10, currency), DEFAULT_FX_RATES_USD) == (
            Decimal(10) * DEFAULT_FX_RATES_USD[currency]
        ).quantize(MICRO)


def test_a_currency_without_a_rate_is_refused_by_name() -> None:
    with pytest.raises(InvalidEvent, match="'XYZ' has no exchange rate"):
        revenue_usd(purchase(1, "xyz"), RATES)


@pytest.mark.parametrize("quantity", ["3", 3.0, "3.0", "3e0"])
def test_quantity_in_any_form_validation_takes(quantity: Any) -> None:
    # Validation accepts these spellings of 3 (lax numbers); enrichment must read them the same way.
    properties = {"item_id": "gems", "price": 2.5, "currency": "USD", "quantity": quantity}
    raw = msgspec.json.encode({"event_id": str(uuid.uuid4()), "event_type": "purchase", "player_id": "p",
                               "timestamp": NOW.isoformat(), "properties": properties})
    decoded = decode_event(raw, limits=LIMITS, now=NOW, allow_history=False)
    assert revenue_usd(decoded, RATES) == Decimal("7.500000")


def test_ad_impressions_carry_their_own_usd_revenue() -> None:
    assert revenue_usd(event("ad_impression", revenue_usd=0.0123456789), RATES) == Decimal("0.012346")
    assert revenue_usd(event("ad_impression", ad_network="x"), RATES) is None


@pytest.mark.parametrize("event_type", ["session_start", "level_complete", "item_acquired", "custom", "identify"])
def test_other_events_earn_nothing(event_type: str) -> None:
    assert revenue_usd(event(event_type, price=5, currency="USD"), RATES) is None


@pytest.mark.parametrize(
    "bad",
    [
        purchase(1e15, "USD"),
        purchase(1_000_000, "USD", 1_000_000),
        purchase("999999999999.9999996", "USD"),
        purchase("inf", "USD"),
        purchase("1e300", "EUR"),
        event("ad_impression", revenue_usd="Infinity"),
        event("ad_impression", revenue_usd=1e13),
    ],
)
def test_amounts_the_store_cannot_hold_are_refused(bad: Event) -> None:
    # A numeric(18, 6) overflow would fail the processor's whole batch; the event is dead-lettered instead.
    with pytest.raises(InvalidEvent, match="USD"):
        revenue_usd(bad, RATES)


prices = st.one_of(
    st.decimals(min_value=0, max_value=10**9, places=4).map(str),
    st.floats(min_value=0, max_value=1e9, allow_nan=False),
    st.integers(min_value=0, max_value=10**9),
)


@settings(max_examples=300, deadline=None)
@given(price=prices, currency=st.sampled_from(sorted(RATES)), quantity=st.integers(1, 1_000_000))
def test_revenue_is_price_times_quantity_times_rate_to_the_micro_dollar(
    price: Any, currency: str, quantity: int
) -> None:
    exact = Decimal(str(price)) * quantity * RATES[currency]
    try:
        amount = revenue_usd(purchase(price, currency, quantity), RATES)
    except InvalidEvent:
        assert exact >= STORABLE - MICRO / 2  # refused only when the rounded amount would not fit
        return
    assert amount is not None
    assert abs(amount - exact) <= MICRO / 2
    assert amount < STORABLE


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["inf", "-inf", "nan", "Infinity", "1e400", "1e30", "3.0", "3e0", "-0", "USD", "eur"]),
)


VALID = {"purchase": {"item_id": "gems", "price": 4.99, "currency": "EUR"}, "ad_impression": {"revenue_usd": 0.01}}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.sampled_from(sorted(VALID)),
    changes=st.fixed_dictionaries(
        {}, optional={k: json_scalars for k in ("item_id", "price", "currency", "quantity", "revenue_usd")}
    ),
)
def test_whatever_validation_accepts_enriches_to_a_storable_amount_or_invalid_event(
    event_type: str, changes: dict[str, Any]
) -> None:
    # The processor stalls on any other exception: enrichment runs where only InvalidEvent is caught.
    properties = {**VALID[event_type], **changes}
    raw = msgspec.json.encode({"event_id": str(uuid.uuid4()), "event_type": event_type, "player_id": "p",
                               "timestamp": NOW.isoformat(), "properties": properties})
    try:
        decoded = decode_event(raw, limits=LIMITS, now=NOW, allow_history=False)
        amount = revenue_usd(decoded, DEFAULT_FX_RATES_USD)
    except InvalidEvent:
        return
    if amount is not None:
        assert amount.is_finite() and 0 <= amount < STORABLE and amount == amount.quantize(MICRO)
