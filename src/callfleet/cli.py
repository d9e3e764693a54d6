"""The ``callfleet`` command: serve, team and key management, database upgrades."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from callfleet.config import get_settings
from callfleet.db.migrate import migrate
from callfleet.db.session import Database, open_database
from callfleet.errors import ApiError

app = typer.Typer(help="callfleet: outbound AI phone campaigns with a built-in CRM.",
                  no_args_is_help=True, add_completion=False)
team_app = typer.Typer(help="Teams (tenants).", no_args_is_help=True)
key_app = typer.Typer(help="API keys of a team.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(team_app, name="team")
app.add_typer(key_app, name="key")
app.add_typer(db_app, name="db")
console = Console(stderr=True)
T = TypeVar("T")


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine on uvloop when it is installed (as ``callfleet serve`` does through
    uvicorn): its event loop and transports cost the workers about a fifth less CPU than
    asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type,no-any-return]


def _with_db(fn: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = open_database(get_settings().resolved_database_url(), null_pool=True)
        try:
            await migrate(db)
            return await fn(db)
        finally:
            await db.dispose()

    try:
        return run_async(run())
    except ApiError as exc:
        console.print(f"[red]error:[/red] {exc.error}")
        raise typer.Exit(2) from None


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Serve the API only; dial from `callfleet worker`s."),
    log_level: str = typer.Option("warning", help="uvicorn's log level."),
) -> None:
    """Run the API and, unless --no-worker, the dialer (migrations are applied at start).
    OpenAPI docs at /docs."""
    import uvicorn

    from callfleet.logging import configure

    configure(get_settings().log_level)
    uvicorn.run(
        "callfleet.app:api_only_app" if no_worker else "callfleet.app:create_app",
        factory=True, host=host, port=port, log_level=log_level, access_log=False,
    )


@app.command()
def worker(
    metrics_port: int = typer.Option(
        0, help="Serve Prometheus metrics (dialer, webhook sender) on this port; 0: off."),
    metrics_host: str = typer.Option("127.0.0.1", help="Interface for --metrics-port."),
) -> None:
    """Run the dialer and the other background loops, no API (any number of workers may
    share one PostgreSQL database)."""
    import signal

    from callfleet.app import build_dialer
    from callfleet.logging import configure
    from callfleet.worker import run_background

    settings = get_settings()
    configure(settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()  # first, so that a SIGTERM during start-up stops cleanly
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if metrics_port:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=metrics_host)
        db = open_database(settings.resolved_database_url(), pool_size=5)
        try:
            await migrate(db)
            if stop.is_set():
                return
            dialer = await build_dialer(settings, db)
            await run_background(settings, db, dialer, stop)
        finally:
            await db.dispose()

    run_async(run())


@app.command()
def demo(
    contacts: int = typer.Option(200, help="How many demo contacts to create."),
    time_scale: float = typer.Option(
        None, help="Simulated seconds per real second (default 7200, or CALLFLEET_TIME_SCALE)."),
    timeout: float = typer.Option(120.0, help="Stop watching after this many real seconds."),
) -> None:
    """Create a demo team and run a whole campaign on the simulated carrier, live."""
    import os

    from callfleet.demo import run_demo
    from callfleet.logging import configure

    settings = get_settings()
    # The demo's own display says what happens; logs only for warnings unless asked for.
    configure(settings.log_level if "CALLFLEET_LOG_LEVEL" in os.environ else "WARNING")
    scale = time_scale or (settings.time_scale if "CALLFLEET_TIME_SCALE" in os.environ
                           else 7200.0)
    settings = settings.model_copy(update={"time_scale": scale, "carrier": "sim"})
    code = run_async(run_demo(settings, contacts, timeout, Console()))
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to CALLFLEET_DATABASE_URL."""

    async def run(db: Database) -> None:
        return None

    _with_db(run)
    console.print("database is up to date")


@team_app.command("create")
def team_create(
    name: str = typer.Option(..., "--name", help="Display name."),
    slug: str = typer.Option(None, "--slug", help="accountSlug; derived from the name if unset."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create a team and its first API key (shown once)."""
    from callfleet.teams.service import create_team

    async def run(db: Database) -> tuple[str, str, str]:
        async with db.session() as s:
            team, token = await create_team(s, name, slug)
            await s.commit()
            return team.id, team.slug, token

    team_id, team_slug, token = _with_db(run)
    if as_json:
        _emit({"team_id": team_id, "account_slug": team_slug, "api_key": token})
    else:
        console.print(f"team [bold]{team_id}[/bold] ({team_slug})")
        console.print(f"API key (shown once): [bold]{token}[/bold]")


@team_app.command("list")
def team_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List teams with their number of contacts."""
    from callfleet.crm.models import Contact
    from callfleet.teams.models import Team

    async def run(db: Database) -> list[dict[str, Any]]:
        async with db.session(write=False) as s:
            counts = (
                select(Contact.team_id, func.count().label("n")).group_by(Contact.team_id)
            ).subquery()
            rows = await s.execute(
                select(Team, counts.c.n)
                .outerjoin(counts, counts.c.team_id == Team.id)  # tenancy: system (all teams)
                .order_by(Team.id)
            )
            return [
                {"team_id": t.id, "account_slug": t.slug, "name": t.name, "contacts": n or 0}
                for t, n in rows
            ]

    teams = _with_db(run)
    if as_json:
        _emit({"teams": teams})
        return
    table = Table("team_id", "account_slug", "name", "contacts")
    for t in teams:
        table.add_row(t["team_id"], t["account_slug"], t["name"], str(t["contacts"]))
    Console().print(table)


def _team_by_ref(ref: str) -> Callable[[Any], Awaitable[str]]:
    from callfleet.teams.models import Team

    async def find(s: Any) -> str:
        team_id = await s.scalar(select(Team.id).where((Team.id == ref) | (Team.slug == ref)))
        if team_id is None:
            raise ApiError(404, f"No team with id or slug {ref!r}")
        return str(team_id)

    return find


@key_app.command("create")
def key_create(
    team: str = typer.Option(..., "--team", help="Team id or account slug."),
    name: str = typer.Option(None, "--name"),
    read_only: bool = typer.Option(False, "--read-only", help="Only GET requests."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create another API key for a team (shown once)."""
    from callfleet.teams.service import create_key

    async def run(db: Database) -> tuple[str, str, str]:
        async with db.session() as s:
            team_id = await _team_by_ref(team)(s)
            key, token = await create_key(
                s, team_id, name=name, scopes=["read"] if read_only else None
            )
            await s.commit()
            return team_id, key.id, token

    team_id, key_id, token = _with_db(run)
    if as_json:
        _emit({"team_id": team_id, "key_id": key_id, "api_key": token})
    else:
        console.print(f"key [bold]{key_id}[/bold]: {token}")


@key_app.command("list")
def key_list(
    team: str = typer.Option(..., "--team", help="Team id or account slug."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List a team's keys (prefixes only; tokens are never stored)."""
    from callfleet.teams.models import ApiKey
    from callfleet.teams.principal import TeamScope
    from callfleet.teams.service import key_out

    async def run(db: Database) -> list[dict[str, Any]]:
        async with db.session(write=False) as s:
            team_id = await _team_by_ref(team)(s)
            keys = await s.scalars(TeamScope(team_id).select(ApiKey).order_by(ApiKey.id))
            return [key_out(k) for k in keys]

    keys = _with_db(run)
    if as_json:
        _emit({"api_keys": keys})
        return
    table = Table("id", "name", "prefix", "scopes", "revoked_at")
    for k in keys:
        table.add_row(k["id"], k["name"] or "", k["prefix"], ",".join(k["scopes"]) or "all",
                      k["revoked_at"] or "")
    Console().print(table)


@key_app.command("revoke")
def key_revoke(key_id: str = typer.Argument(..., help="The key's id (key_…).")) -> None:
    """Revoke a key; requests with it get 401 (within the auth cache's few seconds)."""
    from callfleet.db.base import utcnow
    from callfleet.teams.models import ApiKey

    async def run(db: Database) -> None:
        async with db.session() as s:
            key = await s.get(ApiKey, key_id)
            if key is None:
                raise ApiError(404, f"No API key {key_id!r}")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
            await s.commit()

    _with_db(run)
    console.print(f"revoked {key_id}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
