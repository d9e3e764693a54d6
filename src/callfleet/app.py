"""FastAPI factory: routers, error handlers, health and metrics, and the lifespan that opens
the database and applies migrations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from sqlalchemy import text
from starlette.responses import Response

from callfleet import __version__, secrets
from callfleet.api import errors
from callfleet.api.deps import AuthCache, RateLimiter
from callfleet.api.limits import limited_receive
from callfleet.api.responses import JSON
from callfleet.assistants.routes import router as assistants_router
from callfleet.calls.routes import router as calls_router
from callfleet.campaigns.routes import router as campaigns_router
from callfleet.carriers.router import CarrierRouter, make_router
from callfleet.carriers.routes import router as carrier_accounts_router
from callfleet.carriers.sim.carrier import SimCarrier
from callfleet.carriers.telnyx.routes import router as telnyx_router
from callfleet.carriers.twilio.routes import router as twilio_router
from callfleet.clock import Clock, shared_clock
from callfleet.compliance.routes import compliance_router
from callfleet.compliance.routes import router as dnc_router
from callfleet.config import Settings, get_settings
from callfleet.conversation.routes import router as conversation_router
from callfleet.crm.routes import router as crm_router
from callfleet.db.migrate import migrate
from callfleet.db.session import Database, open_database
from callfleet.dialer.engine import Dialer
from callfleet.numbers.routes import router as numbers_router
from callfleet.recordings import recording_store
from callfleet.teams.routes import router as teams_router
from callfleet.web.install import install as install_web
from callfleet.webhooks.routes import router as webhooks_router
from callfleet.worker import run_background

try:  # live voice needs the optional extra callfleet[voice] (pipecat); without it: text only
    from callfleet.voice import routes as voice_routes
    from callfleet.voice import simcallee
    from callfleet.voice.planner import DatabasePlanner
    from callfleet.voice.runtime import Admission
    from callfleet.voice.slotlease import SlotLease
except ImportError:  # pragma: no cover - depends on the install
    voice_routes = None  # type: ignore[assignment]

HTTP_LATENCY = Histogram(
    "callfleet_http_request_seconds",
    "HTTP request latency by route",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestGuard:
    """Caps every body while it streams in (413 at the matched route's limit, chunked or
    not: api/limits.py), refuses NUL characters in the query string (400; no database
    stores NUL in text) for every endpoint, and records each request's latency. A plain ASGI
    middleware: Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) runs every
    request through an extra task and memory streams, a measurable share of a small
    request's CPU."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._refusal(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts

        async def send_recording(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            # The app's settings at request time (what its routes read, too).
            settings = getattr(scope["app"].state, "settings", self.settings) \
                if "app" in scope else self.settings
            await self.app(scope, limited_receive(scope, receive, settings), send_recording)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            HTTP_LATENCY.labels(scope["method"], getattr(route, "path", "unmatched"),
                                str(status)).observe(time.perf_counter() - start)

    def _refusal(self, scope: dict[str, Any]) -> Response | None:
        query = scope.get("query_string", b"").decode("latin-1")
        if "%00" in query or "\x00" in query:
            bad = {k or "query": "must not contain NUL characters"
                   for k, v in parse_qsl(query, keep_blank_values=True)
                   if "\x00" in k or "\x00" in v} or {"query": "must not contain NUL characters"}
            name = next(iter(bad))
            return JSON(errors.error_body(f"{name} must not contain NUL characters", bad),
                        status_code=400)
        return None


def build_carrier(settings: Settings, db: Database, clock: Clock) -> CarrierRouter:
    """The dialer's carrier: the simulated network and the real carriers' accounts, one
    call at a time through its number's provider (``carriers.router``)."""
    sim = SimCarrier(db, clock, mix=settings.sim_mix,
                     invalid_percent=settings.sim_invalid_percent,
                     instant=settings.sim_instant, audio=settings.sim_audio)
    if voice_routes is not None:
        async def answer(event: Any) -> None:
            await simcallee.answer(event, db=db, voice_url=settings.voice_url,
                                   hangup=sim.hangup)
        sim.on_audio_answer = answer
    return make_router(db, settings, sim)


async def build_dialer(settings: Settings, db: Database, clock: Clock | None = None) -> Dialer:
    if settings.time_scale != 1.0 and settings.carrier != "sim":
        raise ValueError("CALLFLEET_TIME_SCALE is allowed only with the simulated carrier")
    clock = clock or await shared_clock(db, settings.time_scale)
    return Dialer(db, clock, build_carrier(settings, db, clock), settings)


def create_app(
    settings: Settings | None = None, db: Database | None = None, *, run_worker: bool = True,
    clock: Clock | None = None,
) -> FastAPI:
    """The API process. With ``run_worker`` the dialer loop runs inside it (the default
    single-process deployment); ``callfleet serve --no-worker`` leaves that to workers."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = db is None
        database = db or open_database(
            settings.resolved_database_url(), pool_size=settings.db_pool_size
        )
        await migrate(database)
        secrets.configure(settings)
        app.state.db = database
        dialer = await build_dialer(settings, database, clock)
        app.state.dialer = dialer
        app.state.clock = dialer.clock
        app.state.carrier = dialer.carrier
        voice = None
        if voice_routes is not None:
            voice = app.state.voice = voice_routes.VoiceService(
                DatabasePlanner(database, dialer.clock, dialer.carrier,
                                tool_timeout=settings.tool_timeout_seconds,
                                data_dir=settings.data_dir,
                                recordings=app.state.recordings),
                Admission(settings.voice_max_calls))
            voice.lag.start()
            # This process's voice slots, offered to every dialer (calls.slots).
            lease = SlotLease(database, dialer.clock, voice.admission)
            await lease.start()
            # The carrier's answering-machine verdict reaches the call's live session.
            dialer.events.on_verdict = voice.amd_verdict
        stop = asyncio.Event()
        task = (asyncio.create_task(run_background(settings, database, dialer, stop))
                if run_worker else None)
        try:
            yield
        finally:
            if voice is not None:
                await voice.lag.stop()
                await lease.stop()
            stop.set()
            if task is not None:
                await task
            await dialer.carrier.aclose()
            if own:
                await database.dispose()

    app = FastAPI(
        title="callfleet",
        version=__version__,
        description="Outbound AI phone campaigns with a built-in CRM. "
        "Talkturo-compatible REST API: camelCase requests, snake_case responses.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.recordings = recording_store(settings)  # local files or an S3 bucket
    app.state.auth_cache = AuthCache(settings.auth_cache_seconds)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    if db is not None:
        app.state.db = db
    errors.install(app)

    app.add_middleware(RequestGuard, settings=settings)

    @app.get("/health", tags=["ops"], response_model=None)
    async def health(request: Request) -> JSON:
        try:
            async with request.app.state.db.session(write=False) as s:
                await s.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - health reports, never raises
            return JSON({"success": False, "status": "error", "database": "unreachable"}, 503)
        return JSON({"success": True, "status": "ok", "database": "ok", "version": __version__})

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(teams_router)
    app.include_router(crm_router)
    app.include_router(assistants_router)
    app.include_router(numbers_router)
    app.include_router(campaigns_router)
    app.include_router(calls_router)
    app.include_router(conversation_router)
    app.include_router(dnc_router)
    app.include_router(compliance_router)
    app.include_router(webhooks_router)
    app.include_router(carrier_accounts_router)
    app.include_router(twilio_router)
    app.include_router(telnyx_router)
    if voice_routes is not None:
        app.include_router(voice_routes.router)  # the carriers' media WebSocket
    install_web(app)  # the web app under / (docs/web.md)
    return app


def api_only_app() -> FastAPI:
    """Factory for ``callfleet serve --no-worker``."""
    return create_app(run_worker=False)
