"""Builds the notifier on the adapters it is given: its routes, the request consumer and the
delivery worker beside them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.auth.secret import derive, platform_secret
from gamemetrics.auth.verifier import token_verifier
from gamemetrics.ports.mail import Mail
from gamemetrics.service import Adapters, Service
from gamemetrics.services.notifier.accept import Acceptor
from gamemetrics.services.notifier.delivery import Deliverer, Providers
from gamemetrics.services.notifier.eraser import NotificationsEraser
from gamemetrics.services.notifier.export import ExportRoutes
from gamemetrics.services.notifier.http import NotifierRoutes
from gamemetrics.services.notifier.inbox import InboxRoutes
from gamemetrics.services.notifier.player_tokens import PLAYER_TOKEN_PURPOSE, PlayerTokens
from gamemetrics.services.notifier.requests import RequestWorker
from gamemetrics.services.notifier.schedule import Scheduler
from gamemetrics.services.notifier.templates import CHANNEL_FIELDS
from gamemetrics.services.notifier.triggers import RuleRoutes, RuleWorker
from gamemetrics.services.notifier.unsubscribe import UNSUBSCRIBE_PURPOSE, LinkSigner
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.health import database_probe
from gamemetrics.web.principal import Guard
from gamemetrics.web.refusals import exception_handlers

GUARD_MEMO_SECONDS = 60
"""How long a verified token and a game found in its tenant are trusted without a check (never
past the token's expiry)."""


def providers_of(adapters: Adapters) -> Providers:
    """Each channel's providers: the Mail adapter where it carries the channel, then the fallback's."""
    chain: dict[str, list[tuple[str, Mail]]] = {}
    for name, mail in (("primary", adapters.mail), ("fallback", adapters.mail_fallback)):
        if mail is None:
            continue
        for channel in CHANNEL_FIELDS:
            if channel in mail.channels:
                chain.setdefault(channel, []).append((name, mail))
    return chain


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The notifier on `adapters`: its API, the `notifications.requests` consumer and the delivery worker."""
    own = settings.notifier
    secret = platform_secret(settings)
    links = LinkSigner(derive(secret, UNSUBSCRIBE_PURPOSE), own.public_url)
    pool, bus = adapters.pool, adapters.bus
    tenancy = TenancyStore(pool)
    deliverer = Deliverer(pool, bus.producer(), providers_of(adapters), own)
    acceptor = Acceptor(pool, links, max_body_bytes=own.notify_max_body_bytes, on_written=deliverer.wake,
                        keeper=deliverer.keeper)
    # A send is one request per notification: checking its token's signature and looking its game
    # up again each time would cost more than accepting it.
    guard = Guard(token_verifier(settings, pool), tenancy,
                  verified=LocalMemo(10_000, ttl_seconds=GUARD_MEMO_SECONDS),
                  games=LocalMemo(10_000, ttl_seconds=GUARD_MEMO_SECONDS))
    requests = RequestWorker(bus, acceptor)
    yield Service(
        routes=[*NotifierRoutes(pool, guard, acceptor, links).routes(),
                *InboxRoutes(pool, guard, PlayerTokens(derive(secret, PLAYER_TOKEN_PURPOSE),
                                                       own.player_token_ttl_seconds)).routes(),
                *RuleRoutes(pool, guard).routes(), *ExportRoutes(pool, guard).routes()],
        exception_handlers=exception_handlers(token_message=lambda exc: f"invalid token: {exc}"),
        workers={"notification-requests": requests.run, "deliveries": deliverer.run,
                 "notification-rules": RuleWorker(pool, bus, acceptor).run,
                 "scheduled-rules": Scheduler(pool, acceptor, interval_seconds=own.notify_schedule_seconds).run},
        checks={"database": database_probe(pool), "bus": bus.ping},
        erasers=[NotificationsEraser(pool, bus)],
    )
