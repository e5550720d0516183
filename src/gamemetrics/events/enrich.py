"""Enrichment: normalised context and purchase amounts in USD (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from gamemetrics.events.schema import Event
from gamemetrics.events.validation import InvalidEvent, json_value

_PLATFORMS = {
    "ios": "ios", "iphone": "ios", "ipad": "ios", "ipados": "ios",
    "android": "android",
    "pc": "pc", "windows": "pc", "win": "pc", "steam": "pc", "mac": "pc", "macos": "pc", "osx": "pc",
    "linux": "pc", "epic": "pc",
    "web": "web", "webgl": "web", "browser": "web", "html5": "web",
    "playstation": "playstation", "ps4": "playstation", "ps5": "playstation",
    "xbox": "xbox", "xbox one": "xbox", "xbox series": "xbox",
    "switch": "switch", "nintendo switch": "switch",
}
_OSES = {"ios": "ios", "ipados": "ios", "android": "android", "windows": "windows", "win": "windows",
         "macos": "macos", "mac os x": "macos", "osx": "macos", "linux": "linux"}

CENT = Decimal("0.000001")
# Revenue columns are numeric(18, 6): an amount from 10^12 USD up cannot be stored, and would fail
# the processor's whole batch, so such an event is dead-lettered instead.
MAX_REVENUE_USD = Decimal(10) ** 12


def normalise_platform(value: str | None) -> str | None:
    """Map the many spellings games send onto a small set; unknown values pass through lowercased."""
    if not value:
        return None
    key = value.strip().lower()
    return _PLATFORMS.get(key, key[:64])


def normalise_os(value: str | None) -> str | None:
    """`iOS 17.2` → `ios`; unknown systems pass through lowercased, without the version."""
    if not value:
        return None
    name = value.strip().lower()
    for known, canonical in _OSES.items():
        if name.startswith(known):
            return canonical
    return name.split(" ")[0][:64]


def normalise_country(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2, upper case; anything else is dropped rather than stored wrong."""
    if value and len(value) == 2 and value.isascii() and value.isalpha():
        return value.upper()
    return None


def revenue_usd(event: Event, rates: Mapping[str, Decimal]) -> Decimal | None:
    """A purchase's price × quantity in USD by the configured table; other events earn nothing."""
    if event.event_type == "ad_impression":
        value = json_value(event.properties).get("revenue_usd")
        return _usd(_decimal(value)) if value is not None else None
    if event.event_type != "purchase":
        return None
    # Read as sent, not as validated: a price sent as "4.99" stays exact, where a float would not.
    properties = json_value(event.properties)
    currency = str(properties["currency"]).upper()
    rate = rates.get(currency)
    if rate is None:
        raise InvalidEvent(f"purchase currency {currency!r} has no exchange rate configured")
    price = _decimal(properties["price"])
    # Validation lets a quantity through as 3, 3.0, "3" or "3e0"; int() would refuse the last two.
    quantity = _decimal(properties.get("quantity", 1))
    return _usd(price * quantity * rate)


def _usd(amount: Decimal) -> Decimal:
    # Compared again once rounded: 999999999999.9999996 rounds up to 10^12, which does not fit.
    if amount.is_finite() and abs(amount) < MAX_REVENUE_USD:
        rounded = amount.quantize(CENT)
        if abs(rounded) < MAX_REVENUE_USD:
            return rounded
    raise InvalidEvent(f"revenue of {amount} USD is out of range; the limit is {MAX_REVENUE_USD:,} USD")


def _decimal(value: object) -> Decimal:
    # str() first: Decimal(1.99) would carry the float's binary error into revenue.
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise InvalidEvent(f"{value!r} is not a number") from None
