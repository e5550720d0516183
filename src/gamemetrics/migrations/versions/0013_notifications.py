"""The notifier's tables: templates, notifications, one delivery record per (notification,
channel), and the players' notification preferences.

A delivery record is written (claimed, with its message id) before the provider is called, so a
notifier that restarts finds every accepted notification and resends an interrupted one under the
same message id, which the outbox and the providers' idempotency keep to one message. Row-level
security as on every tenant table.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-01
"""

from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

APP_ROLE = "gamemetrics_app"
TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"
TABLES = ("notification_templates", "notifications", "notification_deliveries", "notification_preferences",
          "notification_rules", "notification_rule_progress", "notification_rule_fires", "notification_devices")

SCHEMA = """
CREATE TABLE notification_templates (
    tenant_id       uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id         uuid NOT NULL REFERENCES games ON DELETE CASCADE,
    name            text NOT NULL,
    category        text NOT NULL,
    critical        boolean NOT NULL DEFAULT false,
    content         jsonb NOT NULL,
    locales         jsonb NOT NULL DEFAULT '{}',
    fallback_locale text NOT NULL DEFAULT 'en',
    sample          jsonb NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, game_id, name)
);

-- idempotency_key is the caller's (or the request topic's position): one notification per key.
CREATE TABLE notifications (
    tenant_id       uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    notification_id uuid NOT NULL,
    game_id         uuid NOT NULL,
    player_id       text,
    template        text NOT NULL,
    category        text NOT NULL,
    idempotency_key text,
    request_hash    bytea,  -- of what was asked: a key reused for another request is refused
    send_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, notification_id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX notifications_player ON notifications (tenant_id, game_id, player_id) WHERE player_id IS NOT NULL;

-- state: queued (due at next_attempt_at), sending (claimed; due again when its lease runs out),
-- sent, failed (given up, with the provider's reason), suppressed (never sent, with why).
CREATE TABLE notification_deliveries (
    tenant_id       uuid NOT NULL,
    notification_id uuid NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'web_push', 'in_app')),
    state           text NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'suppressed')),
    reason          text,
    attempts        integer NOT NULL DEFAULT 0,
    message_id      uuid NOT NULL,
    recipient       text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    body            text NOT NULL DEFAULT '',
    headers         jsonb NOT NULL DEFAULT '{}',
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    provider        text,
    read_at         timestamptz,  -- in_app: when the player marked it read in their inbox
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, notification_id, channel),
    FOREIGN KEY (tenant_id, notification_id) REFERENCES notifications ON DELETE CASCADE
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE state IN ('queued', 'sending');
-- A player's inbox: their in-app messages that were delivered.
CREATE INDEX notification_deliveries_inbox ON notification_deliveries (tenant_id, recipient, sent_at)
    WHERE channel = 'in_app' AND state = 'sent';

-- categories: {"<category>": {"<channel>": false}} as the player (or the game on their behalf) set
-- them; quiet_hours: {"start": "22:00", "end": "08:00", "timezone": "Europe/Helsinki"};
-- daily_caps: {"<channel>": n}.
CREATE TABLE notification_preferences (
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id     uuid NOT NULL,
    player_id   text NOT NULL,
    categories  jsonb NOT NULL DEFAULT '{}',
    quiet_hours jsonb,
    daily_caps  jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, game_id, player_id)
);

CREATE TABLE notification_rules (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id    uuid NOT NULL REFERENCES games ON DELETE CASCADE,
    name       text NOT NULL,
    event_type text NOT NULL,
    rule       jsonb NOT NULL,
    enabled    boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, game_id, name)
);

-- Events counted towards a rule's "N events within a session", by their ids, so an event read
-- twice counts once; when the rule fires the count restarts and fired_by keeps the event that made
-- N, so that event read again (before its offset was committed) fires again, under the same key.
CREATE TABLE notification_rule_progress (
    tenant_id uuid NOT NULL,
    game_id   uuid NOT NULL,
    rule      text NOT NULL,
    player_id text NOT NULL,
    bucket    text NOT NULL,
    event_ids uuid[] NOT NULL,
    fired_by  uuid,
    PRIMARY KEY (tenant_id, game_id, rule, player_id, bucket)
);

-- When a rule last fired for a player (the event's time, and which event): its cooldown counts from there.
CREATE TABLE notification_rule_fires (
    tenant_id uuid NOT NULL,
    game_id   uuid NOT NULL,
    rule      text NOT NULL,
    player_id text NOT NULL,
    fired_at  timestamptz NOT NULL,
    fired_by  uuid NOT NULL,
    PRIMARY KEY (tenant_id, game_id, rule, player_id)
);

-- A player's push contact points: an FCM registration token (kind push) or a Web Push
-- subscription (kind web_push: its endpoint and keys as JSON in address).
CREATE TABLE notification_devices (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id    uuid NOT NULL,
    player_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('push', 'web_push')),
    address    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, game_id, kind, address)
);
CREATE INDEX notification_devices_player ON notification_devices (tenant_id, game_id, player_id, kind, created_at);

-- The outbox carries every channel of the notifier, Web Push among them.
ALTER TABLE outbox DROP CONSTRAINT outbox_channel_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_channel_check
    CHECK (channel IN ('email', 'sms', 'push', 'web_push', 'in_app'));
"""


def _security(table: str) -> str:
    """The same two policies and grant as revision 0002 gives every tenant table."""
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON {table} TO {TRUSTED_ROLE} USING (true) WITH CHECK (true);
GRANT SELECT ON {table} TO {APP_ROLE};
"""


def upgrade() -> None:
    op.execute(SCHEMA + "".join(_security(table) for table in TABLES))


def downgrade() -> None:
    op.execute("DROP TABLE " + ", ".join(reversed(TABLES)) + ";"
               " ALTER TABLE outbox DROP CONSTRAINT outbox_channel_check;"
               " ALTER TABLE outbox ADD CONSTRAINT outbox_channel_check"
               " CHECK (channel IN ('email', 'sms', 'push', 'in_app'))")
