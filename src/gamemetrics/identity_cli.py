"""`gamemetrics admin` commands of the identity work (OAuth2 clients, operators, signing keys,
tokens) and `gamemetrics audit verify`. Every creation and revocation is audited as `cli:<user>`."""

from __future__ import annotations

import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from gamemetrics.settings import Settings, get_settings


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def audited(url: str, settings: Settings, change: Callable[[Any], Awaitable[Any]],
                  entry: Callable[[Any], Any]) -> Any:
    """Run `change` and append `entry(result)` to the audit log in one transaction."""
    from gamemetrics.audit import AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.cli import _pool

    audit = AuditLog(platform_secret(settings))
    async with _pool(url) as pool, pool.connection() as conn, conn.transaction():
        result = await change(conn)
        await audit.append(conn, entry(result))
    return result


def create_client(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id; the client's tokens see this tenant only.")],
    scopes: Annotated[str, typer.Option(help='Space-separated scopes, e.g. "analytics:read players:read".')],
    name: Annotated[str, typer.Option(help="A name to recognise the client by.")] = "client",
) -> None:
    """Create an OAuth2 client; prints client_id and client_secret once (only a hash is kept)."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.cli import _print_json, _run_admin
    from gamemetrics.services.users.clients import ClientStore, InvalidScopes

    async def work(settings: Settings, url: str) -> Any:
        return await audited(
            url, settings, lambda conn: ClientStore(None).create(conn, tenant, scopes.split(), name),  # type: ignore[arg-type]
            lambda c: AuditEntry(cli_actor(), "client.created", tenant, c.client_id, {"scopes": c.scopes}))

    try:
        created = _run_admin(work)
    except InvalidScopes as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _print_json({"client_id": created.client_id, "client_secret": created.client_secret,
                 "tenant_id": created.tenant_id, "scopes": created.scopes, "name": created.name})


def revoke_client(client_id: str) -> None:
    """Revoke an OAuth2 client: no new tokens; those it holds expire within the token lifetime."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.cli import _print_json, _run_admin
    from gamemetrics.services.users.clients import ClientStore

    async def work(settings: Settings, url: str) -> Any:
        return await audited(url, settings, lambda conn: ClientStore(None).revoke(conn, client_id),  # type: ignore[arg-type]
                             lambda tenant: AuditEntry(cli_actor(), "client.revoked", tenant, client_id))

    _run_admin(work)
    _print_json({"client_id": client_id, "revoked": True})


def create_operator(
    email: Annotated[str, typer.Option(help="The operator's login.")],
    role: Annotated[str, typer.Option(help="platform_admin, tenant_admin or analyst.")],
    tenant: Annotated[uuid.UUID | None, typer.Option(help="Tenant id (not for a platform admin).")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input instead of a prompt.")] = False,
) -> None:
    """Create a dashboard operator; the password is hashed with argon2id and never printed."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.cli import _print_json, _run_admin
    from gamemetrics.services.users.operators import OperatorStore

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)

    async def work(settings: Settings, url: str) -> Any:
        return await audited(
            url, settings, lambda conn: OperatorStore(None).create(conn, email, password, role, tenant),  # type: ignore[arg-type]
            lambda op: AuditEntry(cli_actor(), "operator.created", tenant, str(op.operator_id),
                                  {"email": op.email, "role": op.role}))

    try:
        operator = _run_admin(work)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _print_json({"operator_id": operator.operator_id, "email": operator.email, "role": operator.role,
                 "tenant_id": operator.tenant_id})


def rotate_signing_key() -> None:
    """Make a new token signing key now; the old ones stay published until their tokens expire."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.cli import _pool, _print_json, _run_admin

    async def work(settings: Settings, url: str) -> Any:
        from gamemetrics.auth.secret import platform_secret
        from gamemetrics.services.users.main import signing_keys

        async with _pool(url) as pool:
            keys = signing_keys(settings, pool, platform_secret(settings))
            kid = await keys.rotate()
            await audited(url, settings, lambda conn: _none(), lambda _: AuditEntry(
                cli_actor(), "signing_key.rotated", None, kid))
            return await keys.describe()

    _print_json({"keys": _run_admin(work)})


async def _none() -> None:
    return None


def issue_token(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id; the token sees this tenant's data only.")],
    scopes: Annotated[str, typer.Option(help='Space-separated scopes, e.g. "analytics:read".')] = "analytics:read",
    ttl: Annotated[int | None, typer.Option(min=1, help="Lifetime in seconds; by default the settings'.")] = None,
    subject: Annotated[str | None, typer.Option(help="The token's subject (sub); by default tenant:<id>.")] = None,
) -> None:
    """Mint an access token with the platform's signing key, as an operator at the console (audited);
    applications use an OAuth2 client (`admin create-client`) and POST /oauth/token instead."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.cli import _pool, _print_json, _run_admin
    from gamemetrics.services.users.clients import InvalidScopes, check_scopes
    from gamemetrics.tenancy.store import NotFound

    try:
        granted = check_scopes(scopes.split())
    except InvalidScopes as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

    async def work(settings: Settings, url: str) -> dict[str, Any]:
        from gamemetrics.auth.secret import platform_secret
        from gamemetrics.services.users.main import signing_keys, token_issuer

        lifetime = ttl or settings.auth_token_ttl_seconds
        async with _pool(url) as pool:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant,))
                if await cur.fetchone() is None:
                    raise NotFound(f"tenant {tenant} does not exist")
            keys = signing_keys(settings, pool, platform_secret(settings))
            await keys.current()
            token = token_issuer(settings, keys).issue(tenant, granted, subject=subject, ttl_s=lifetime)
        await audited(url, settings, lambda conn: _none(), lambda _: AuditEntry(
            cli_actor(), "token.issued", tenant, subject or f"tenant:{tenant}", {"scopes": granted, "ttl": lifetime}))
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": " ".join(granted)}

    _print_json(_run_admin(work))


def audit_verify(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Walk the audit chain; exit 1 naming the first changed, removed or re-ordered entry."""
    from gamemetrics.audit import AuditLog
    from gamemetrics.cli import _pool, _print_json, _with_database

    async def work(settings: Settings, url: str) -> Any:
        from gamemetrics.auth.secret import platform_secret

        async with _pool(url) as pool, pool.connection() as conn:
            return await AuditLog(platform_secret(settings)).verify(conn)

    report = _with_database(work)
    if as_json:
        _print_json({"ok": report.ok, "entries": report.entries, "head_seq": report.head_seq,
                     "head_hash": report.head_hash, "problem_seq": report.problem_seq, "problem": report.problem})
    elif report.ok:
        typer.echo(f"audit log intact: {report.entries} entries; head {report.head_seq} {report.head_hash}")
    if not report.ok:
        typer.echo(f"audit log broken at entry {report.problem_seq}: {report.problem}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer, admin: typer.Typer) -> None:
    """Add these commands to the `gamemetrics` CLI."""
    admin.command("create-client")(create_client)
    admin.command("revoke-client")(revoke_client)
    admin.command("create-operator")(create_operator)
    admin.command("rotate-signing-key")(rotate_signing_key)
    admin.command("issue-token")(issue_token)
    audit = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
    audit.command("verify")(audit_verify)
    app.add_typer(audit, name="audit")


__all__ = ["get_settings", "register"]
