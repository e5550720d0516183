"""Identity and GDPR on a running `gamemetrics up`: real OAuth2 clients get tokens that verify
against the published JWKS; a player is erased from every store (a late event goes to the DLQ,
no table holds their id, the export is gone, the audit chain verifies); a tampered audit row is
named; no secret reaches the logs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from gamemetrics.adapters.pglog import PgLogBus
from gamemetrics.adapters.postgres.pool import open_pool
from tests.e2e.conftest import PATIENCE_S, RunningPlatform, new_event

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SECRETS: list[str] = []  # every secret the tests saw; none may be in the platform's log


def _client(running: RunningPlatform, scopes: str) -> dict[str, Any]:
    created = running.cli("admin", "create-client", "--tenant", running.tenant_id, "--scopes", scopes)
    SECRETS.append(created["client_secret"])
    return created


def _token(running: RunningPlatform, client: dict[str, Any]) -> str:
    with OAuth2Client(client["client_id"], client["client_secret"], token_endpoint_auth_method="client_secret_basic",
                      timeout=30) as oauth:
        token = oauth.fetch_token(f"{running.base_url}/oauth/token", grant_type="client_credentials")
    SECRETS.append(token["access_token"])
    return str(token["access_token"])


def test_oauth2_clients_get_tokens_that_verify_against_the_published_jwks(running: RunningPlatform) -> None:
    client = _client(running, "analytics:read players:read")
    meta = httpx.get(f"{running.base_url}/.well-known/oauth-authorization-server", timeout=10).json()
    for method in ("client_secret_basic", "client_secret_post"):
        with OAuth2Client(client["client_id"], client["client_secret"], token_endpoint_auth_method=method,
                          scope="players:read", timeout=30) as oauth:
            token = oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        SECRETS.append(token["access_token"])
        assert token["token_type"] == "Bearer" and token["scope"] == "players:read", method
        signing_key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token["access_token"])
        claims = jwt.decode(token["access_token"], signing_key.key, algorithms=["ES256"], audience="gamemetrics",
                            issuer=meta["issuer"])
        assert claims["tenant_id"] == running.tenant_id and claims["client_id"] == client["client_id"]
        games = running.http.get(f"/v1/games/{running.game_id}/players", params={"limit": 1},
                                 headers={"Authorization": f"Bearer {token['access_token']}"})
        assert games.status_code == 200, games.text
    revoked = running.cli("admin", "revoke-client", client["client_id"])
    assert revoked["revoked"] is True
    with OAuth2Client(client["client_id"], client["client_secret"], timeout=30) as oauth:
        refused = oauth.post(meta["token_endpoint"], data={"grant_type": "client_credentials"},
                             auth=(client["client_id"], client["client_secret"]))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def _tables_holding(running: RunningPlatform, needle: str) -> dict[str, int]:
    """Rows per table.column (every table of the schema, every text, JSON and binary column) that
    contain `needle`."""
    columns = running.query(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        " AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')"
    )
    assert {"events", "players", "bus_log", "dead_letters", "audit_log", "erasures"} <= {
        c["table_name"] for c in columns}
    found: dict[str, int] = {}
    with psycopg.connect(running.database_url, autocommit=True) as conn:
        for c in columns:
            column = f'"{c["column_name"]}"'
            test = {"bytea": f"position(convert_to(%(n)s, 'UTF8') in {column}) > 0",
                    "ARRAY": f"position(%(n)s in {column}::text) > 0"}.get(
                c["data_type"], f"position(%(n)s in {column}::text) > 0")
            n = conn.execute(f'SELECT count(*) FROM "{c["table_name"]}" WHERE {test}', {"n": needle}).fetchone()[0]
            if n:
                found[f"{c['table_name']}.{c['column_name']}"] = n
    return found


def _trim_bus(running: RunningPlatform) -> None:
    """What the processor does every 30 s: delete log entries every group has read."""
    async def trim() -> None:
        pool = await open_pool(running.database_url, max_size=1)
        try:
            await PgLogBus(running.database_url, pool, {}).trim(24.0)
        finally:
            await pool.close()

    asyncio.run(trim())


def test_erasure_end_to_end(running: RunningPlatform) -> None:
    client = _client(running, "gdpr:erase players:read players:write")
    auth = {"Authorization": f"Bearer {_token(running, client)}"}
    player = f"erase-me-{uuid.uuid4().hex[:10]}"
    bystander = f"keep-me-{uuid.uuid4().hex[:10]}"
    context = {"platform": "ios", "country": "DE"}
    events = [
        new_event("session_start", player, context=context),
        new_event("purchase", player, properties={"item_id": "gems", "price": 4.99, "currency": "EUR"}),
        new_event("level_complete", player, properties={"level": 3, "score": 120}),
        new_event("identify", player, properties={"email": f"{player}@mail.example", "name": "Erin"}),
        # Valid at ingest, refused by the processor (no exchange rate): a dead letter that holds the player.
        new_event("purchase", player, properties={"item_id": "gems", "price": 1, "currency": "CHF"}),
        new_event("session_start", bystander),
    ]
    assert running.send(events)["accepted"] == len(events)
    running.wait_drained()
    path = f"/v1/games/{running.game_id}/players/{player}"
    assert running.http.patch(path, json={"traits": {"vip": True}}, headers=auth).status_code == 200
    held = _tables_holding(running, player)
    assert {"events.player_id", "players.player_id", "player_days.player_id", "sessions.player_id",
            "dead_letters.payload"} <= held.keys(), held
    export = running.http.get(f"{path}/export", headers=auth)
    assert export.status_code == 200, export.text
    document = export.json()
    assert len(document["events"]) == 4 and len(document["dead_letters"]) == 1
    assert document["profile"]["traits"] == {"email": f"{player}@mail.example", "name": "Erin", "vip": True}

    asked = time.monotonic()
    erasure = running.http.delete(path, headers=auth)
    assert erasure.status_code == 202, erasure.text
    status_url = erasure.json()["status_url"]
    state: dict[str, Any] = {}
    while time.monotonic() - asked < PATIENCE_S:
        state = running.http.get(status_url, headers=auth).json()
        if state["state"] == "completed":
            break
        time.sleep(0.05)
    took = time.monotonic() - asked
    assert state["state"] == "completed", state
    inside = running.query("SELECT extract(epoch FROM completed_at - requested_at)::float8 AS s FROM erasures"
                           " WHERE erasure_id = %s", (erasure.json()["erasure_id"],))[0]["s"]
    print(f"erasure completed {inside:.3f} s after the request; seen complete by the client after {took:.2f} s")
    assert {s: v["state"] for s, v in state["stores"].items()} == dict.fromkeys(
        ("events", "rollups", "profile", "dead_letters", "bus", "notifications", "vectors", "archive"), "erased")
    assert state["stores"]["events"]["rows"] == 4 and state["stores"]["dead_letters"]["rows"] == 1

    late = new_event("level_start", player, properties={"level": 4})
    assert running.send([late])["accepted"] == 1
    letters = running.dead_letters([late["event_id"]])
    assert "erased" in letters[late["event_id"]]["reason"], letters
    assert running.stored([late["event_id"]]) == {}
    _trim_bus(running)
    assert _tables_holding(running, player) == {}
    assert _tables_holding(running, bystander), "the bystander's data must stay"
    assert running.http.get(f"{path}/export", headers=auth).status_code == 404
    assert running.http.get(path, headers=auth).status_code == 404
    assert running.http.put(path, json={"traits": {}}, headers=auth).status_code == 410
    # `gamemetrics status` counts what the game still holds: the erased rows are out of its counters too.
    status = running.game_status()
    rows = running.query("SELECT (SELECT count(*) FROM events WHERE game_id = %(g)s) AS stored,"
                         " (SELECT count(*) FROM dead_letters WHERE game_id = %(g)s) AS dead", {"g": running.game_id})
    assert (status["events_stored"], status["events_dead_lettered"]) == (rows[0]["stored"], rows[0]["dead"])
    verified = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "audit", "verify", "--json"],
                              env=running.env, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr
    actions = {row["action"] for row in running.query("SELECT action FROM audit_log")}
    assert {"client.created", "player.exported", "erasure.requested", "erasure.completed"} <= actions


def test_operator_login_is_audited(running: RunningPlatform) -> None:
    email, password = f"ops-{uuid.uuid4().hex[:6]}@studio.example", f"pw-{uuid.uuid4().hex}"
    SECRETS.append(password)
    made = subprocess.run(
        [sys.executable, "-m", "gamemetrics.cli", "admin", "create-operator", "--email", email, "--role", "analyst",
         "--tenant", running.tenant_id, "--password-stdin"],
        env=running.env, input=password + "\n", capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert running.http.post("/v1/operators/login", json={"email": email, "password": "wrong" + password}
                             ).status_code == 401
    login = running.http.post("/v1/operators/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    SECRETS.append(login.json()["access_token"])
    assert login.json()["scope"] == "analytics:read players:read"
    hashed = running.query("SELECT password_hash FROM operators WHERE email = %s", (email,))[0]["password_hash"]
    assert hashed.startswith("$argon2id$") and password not in hashed
    actions = [r["action"] for r in running.query(
        "SELECT action FROM audit_log WHERE subject = %s ORDER BY seq", (email,))]
    assert actions == ["operator.login_failed", "operator.login"]


def test_a_tampered_audit_row_is_named(running: RunningPlatform) -> None:
    rows = running.query("SELECT seq, actor FROM audit_log ORDER BY seq")
    assert len(rows) >= 3
    victim = rows[len(rows) // 2]

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gamemetrics.cli", "audit", "verify"], env=running.env,
                              capture_output=True, text=True, timeout=60)

    def set_actor(actor: str) -> None:
        with psycopg.connect(running.database_url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # past the append-only trigger
            conn.execute("UPDATE audit_log SET actor = %s WHERE seq = %s", (actor, victim["seq"]))

    set_actor("someone-else")
    try:
        broken = verify()
        assert broken.returncode == 1
        assert f"entry {victim['seq']} was changed" in broken.stderr, broken.stderr
    finally:
        set_actor(victim["actor"])
    assert verify().returncode == 0


def test_no_secret_reaches_the_logs(running: RunningPlatform) -> None:
    secrets = [*SECRETS, running.live_key, running.import_key, running.scratch_key]
    assert len(secrets) >= 6, "the tests above must have run first"
    log = running.log_path.read_text(errors="replace")
    leaked = [s[:12] + "..." for s in secrets if s in log]
    assert leaked == [], f"secrets in the platform's log: {leaked}"
