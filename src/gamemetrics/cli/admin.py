"""`gamemetrics admin`: tenants, games, write keys, OAuth2 clients, operators, signing keys and tokens.

Each command works through the stores the services use, on a pool of the same recipe; every
creation and revocation is in the audit log as `cli:<user>`, in the transaction that made it.
"""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gamemetrics.cli.database import audited, cli_actor, run_admin
from gamemetrics.cli.output import fail, print_json
from gamemetrics.settings import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from gamemetrics.services.users.clients import CreatedClient
    from gamemetrics.services.users.operators import Operator
    from gamemetrics.tenancy.store import CreatedKey

app = typer.Typer(no_args_is_help=True, help="Tenants, games, write keys and access tokens.")


@app.command("create-tenant")
def create_tenant(name: str) -> None:
    """Create a tenant (a studio)."""
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, pool: AsyncConnectionPool) -> uuid.UUID:
        return await TenancyStore(pool).create_tenant(name)

    print_json({"tenant_id": run_admin(work)})


@app.command("create-game")
def create_game(name: str, tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id.")]) -> None:
    """Create a game of a tenant."""
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, pool: AsyncConnectionPool) -> uuid.UUID:
        return await TenancyStore(pool).create_game(tenant, name)

    print_json({"tenant_id": tenant, "game_id": run_admin(work)})


@app.command("create-write-key")
def create_write_key(
    game: Annotated[uuid.UUID, typer.Option(help="Game id.")],
    environment: Annotated[str, typer.Option(help="e.g. production, staging, dev")] = "production",
    allow_import: Annotated[bool, typer.Option("--allow-import", help="May send history to /v1/import.")] = False,
) -> None:
    """Create a write key for a game; the key is shown once, only its hash is kept."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, pool: AsyncConnectionPool) -> CreatedKey:
        return await audited(
            settings, pool,
            lambda conn: TenancyStore(pool).create_write_key(
                game, environment=environment, allow_import=allow_import, conn=conn),
            lambda key: AuditEntry(cli_actor(), "write_key.created", key.tenant_id, str(key.key_id),
                                   {"game_id": str(game), "environment": environment, "allow_import": allow_import}))

    created = run_admin(work)
    print_json({"tenant_id": created.tenant_id, "game_id": created.game_id, "key_id": created.key_id,
                "write_key": created.write_key})


@app.command("revoke-write-key")
def revoke_write_key(key_id: uuid.UUID) -> None:
    """Revoke a write key by its id; ingest refuses it within the key cache time."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, pool: AsyncConnectionPool) -> uuid.UUID:
        return await audited(settings, pool, lambda conn: TenancyStore(pool).revoke_write_key(key_id, conn=conn),
                             lambda tenant: AuditEntry(cli_actor(), "write_key.revoked", tenant, str(key_id)))

    run_admin(work)
    print_json({"key_id": key_id, "revoked": True})


@app.command("create-client")
def create_client(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id; the client's tokens see this tenant only.")],
    scopes: Annotated[str, typer.Option(help='Space-separated scopes, e.g. "analytics:read players:read".')],
    name: Annotated[str, typer.Option(help="A name to recognise the client by.")] = "client",
) -> None:
    """Create an OAuth2 client; prints client_id and client_secret once (only a hash is kept)."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.services.users.clients import ClientStore, InvalidScopes

    async def work(settings: Settings, pool: AsyncConnectionPool) -> CreatedClient:
        return await audited(
            settings, pool, lambda conn: ClientStore(pool).create(conn, tenant, scopes.split(), name),
            lambda c: AuditEntry(cli_actor(), "client.created", tenant, c.client_id, {"scopes": c.scopes}))

    try:
        created = run_admin(work)
    except InvalidScopes as exc:
        fail(exc)
    print_json({"client_id": created.client_id, "client_secret": created.client_secret,
                "tenant_id": created.tenant_id, "scopes": created.scopes, "name": created.name})


@app.command("revoke-client")
def revoke_client(client_id: str) -> None:
    """Revoke an OAuth2 client: no new tokens; those it holds expire within the token lifetime."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.services.users.clients import ClientStore

    async def work(settings: Settings, pool: AsyncConnectionPool) -> uuid.UUID:
        return await audited(settings, pool, lambda conn: ClientStore(pool).revoke(conn, client_id),
                             lambda tenant: AuditEntry(cli_actor(), "client.revoked", tenant, client_id))

    run_admin(work)
    print_json({"client_id": client_id, "revoked": True})


@app.command("create-operator")
def create_operator(
    email: Annotated[str, typer.Option(help="The operator's login.")],
    role: Annotated[str, typer.Option(help="platform_admin, tenant_admin or analyst.")],
    tenant: Annotated[uuid.UUID | None, typer.Option(help="Tenant id (not for a platform admin).")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input instead of a prompt.")] = False,
) -> None:
    """Create a dashboard operator; the password is hashed with argon2id and never printed."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.services.users.operators import OperatorStore

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)

    async def work(settings: Settings, pool: AsyncConnectionPool) -> Operator:
        return await audited(
            settings, pool, lambda conn: OperatorStore(pool).create(conn, email, password, role, tenant),
            lambda op: AuditEntry(cli_actor(), "operator.created", tenant, str(op.operator_id),
                                  {"email": op.email, "role": op.role}))

    try:
        operator = run_admin(work)
    except ValueError as exc:
        fail(exc)
    print_json({"operator_id": operator.operator_id, "email": operator.email, "role": operator.role,
                "tenant_id": operator.tenant_id})


@app.command("rotate-signing-key")
def rotate_signing_key() -> None:
    """Make a new token signing key now; the old ones stay published until their tokens expire."""
    from gamemetrics.audit import AuditEntry, AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.services.users.main import signing_keys

    async def work(settings: Settings, pool: AsyncConnectionPool) -> list[dict[str, Any]]:
        secret = platform_secret(settings)
        keys = signing_keys(settings, pool, secret)
        kid = await keys.rotate()
        await AuditLog(secret).record(pool, AuditEntry(cli_actor(), "signing_key.rotated", None, kid))
        return await keys.describe()

    print_json({"keys": run_admin(work)})


@app.command("issue-token")
def issue_token(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id; the token sees this tenant's data only.")],
    scopes: Annotated[str, typer.Option(help='Space-separated scopes, e.g. "analytics:read".')] = "analytics:read",
    ttl: Annotated[int | None, typer.Option(min=1, help="Lifetime in seconds; by default the settings'.")] = None,
    subject: Annotated[str | None, typer.Option(help="The token's subject (sub); by default tenant:<id>.")] = None,
) -> None:
    """Mint an access token with the platform's signing key, as an operator at the console (audited);
    applications use an OAuth2 client (`admin create-client`) and POST /oauth/token instead."""
    from gamemetrics.audit import AuditEntry, AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.services.users.clients import InvalidScopes, check_scopes
    from gamemetrics.services.users.main import signing_keys, token_issuer
    from gamemetrics.tenancy.store import NotFound

    try:
        granted = check_scopes(scopes.split())
    except InvalidScopes as exc:
        fail(exc)

    async def work(settings: Settings, pool: AsyncConnectionPool) -> dict[str, Any]:
        lifetime = ttl or settings.auth.token_ttl_seconds
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant,))
            if await cur.fetchone() is None:
                raise NotFound(f"tenant {tenant} does not exist")
        secret = platform_secret(settings)
        keys = signing_keys(settings, pool, secret)
        await keys.current()
        token = token_issuer(settings, keys).issue(tenant, granted, subject=subject, ttl_s=lifetime)
        await AuditLog(secret).record(pool, AuditEntry(
            cli_actor(), "token.issued", tenant, subject or f"tenant:{tenant}", {"scopes": granted, "ttl": lifetime}))
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": " ".join(granted)}

    print_json(run_admin(work))
