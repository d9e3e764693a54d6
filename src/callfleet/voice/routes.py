"""The media WebSocket a carrier connects to: ``/voice/{carrier}/{call_id}/{token}``.

Refused before the WebSocket is accepted (the carrier sees HTTP 403) when the carrier is
unknown or the token is not the call's (``voice.tokens``); closed with 1013 ("try again
later") when this process is full or draining. Otherwise one pipeline runs the call
(``voice.session``). The process's voice state (``VoiceService``: the planner, the admission
cap, the token key) is ``app.state.voice``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, WebSocket
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from callfleet.secrets import SecretBox
from callfleet.voice.framing import FRAMINGS, HandshakeError
from callfleet.voice.runtime import REFUSED, Admission, LoopLagMonitor
from callfleet.voice.session import MediaSession, Planner, read_start
from callfleet.voice.tokens import valid_token

log = structlog.get_logger("callfleet.voice")
router = APIRouter(tags=["voice"])


@dataclass
class VoiceService:
    planner: Planner
    admission: Admission
    box: SecretBox | None = None  # signs stream tokens; None: the deployment's (secrets)
    http: httpx.AsyncClient | None = None
    lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)
    sessions: dict[str, MediaSession] = field(default_factory=dict)

    def amd_verdict(self, call_id: str, kind: str) -> bool:
        """The carrier's answering-machine verdict (``machine`` or ``human``) for a call
        whose pipeline runs in this process; False when it does not run here (its session
        then reads the verdict from the call's row) or the verdict changed nothing."""
        session = self.sessions.get(call_id)
        if session is None:
            return False
        if session.control is not None:
            session.control.machine_verdict(kind, None, asyncio.get_running_loop().time())
        return session.carrier_verdict(kind)


@router.websocket("/voice/{carrier}/{call_id}/{token}")
async def media_stream(websocket: WebSocket, carrier: str, call_id: str, token: str) -> None:
    voice: VoiceService = websocket.app.state.voice
    framing = FRAMINGS.get(carrier)
    if framing is None or len(call_id) > 64 or not valid_token(call_id, token,
                                                               voice.box):
        REFUSED.labels("token").inc()
        log.warning("media_stream_refused", reason="bad token", carrier=carrier[:20])
        await websocket.close(code=1008)  # before accept: HTTP 403 to the carrier
        return
    signature = websocket.headers.get("x-twilio-signature")
    if signature is not None and carrier == "twilio":
        # Twilio signs the opening request too: checked when sent (the token already
        # proves the URL came from callfleet; the signature, that Twilio opened it).
        check = getattr(voice.planner, "handshake_signed", None)
        if check is None or not await check(carrier, call_id, signature):
            REFUSED.labels("signature").inc()
            log.warning("media_stream_refused", reason="bad signature", call_id=call_id)
            await websocket.close(code=1008)
            return
    refusal = voice.admission.admit(call_id)
    if refusal is not None:
        REFUSED.labels(refusal).inc()
        log.warning("media_stream_refused", reason=refusal, call_id=call_id)
        await websocket.accept()
        await websocket.close(code=1013, reason=refusal)
        return
    try:
        await websocket.accept()
        try:
            start = await read_start(websocket, framing)
        except HandshakeError as exc:
            REFUSED.labels("handshake").inc()
            log.warning("media_stream_refused", reason=str(exc), call_id=call_id)
            with contextlib.suppress(Exception):
                await websocket.close(code=1002, reason=str(exc)[:120])
            return
        session = voice.sessions[call_id] = MediaSession(websocket, framing, voice.planner,
                                                         http=voice.http)
        await session.run(call_id, start)
    except Exception:
        log.exception("media_stream_failed", call_id=call_id)
    finally:
        voice.sessions.pop(call_id, None)
        voice.admission.release(call_id)


def voice_app(planner: Planner, *, capacity: int = 8, box: SecretBox | None = None
              ) -> FastAPI:
    """A process that serves media streams only (tests, the benchmark, ``callfleet voice``
    once it has a database planner): the WebSocket, ``/health/voice`` and ``/metrics``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient() as http:
            voice = app.state.voice = VoiceService(planner, Admission(capacity), box,
                                                   http)
            voice.lag.start()
            try:
                yield
            finally:
                voice.admission.drain()
                await voice.admission.drained(timeout=30)
                await voice.lag.stop()

    app = FastAPI(title="callfleet voice", lifespan=lifespan)
    app.include_router(router)

    @app.get("/health/voice")
    async def health() -> JSONResponse:
        voice: VoiceService = app.state.voice
        return JSONResponse({"active_calls": len(voice.admission.active),
                             "capacity": voice.admission.capacity,
                             "draining": voice.admission.draining,
                             "event_loop_lag_p95": round(voice.lag.p95(), 4)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def drain(app: FastAPI, timeout: float) -> bool:
    """Admit no new call and wait for the running ones (SIGTERM)."""
    voice: VoiceService = app.state.voice
    voice.admission.drain()
    return await voice.admission.drained(timeout)


class _Server(uvicorn.Server):
    """uvicorn, minus its own SIGTERM handling (it would close the calls' WebSockets)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: FastAPI, *, host: str, port: int, drain_seconds: float = 900.0,
                log_level: str = "warning", sock: socket.socket | None = None) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then drain: no new call is admitted, the
    running ones finish (up to ``drain_seconds``), then the process stops. A second signal
    stops at once."""
    server = _Server(uvicorn.Config(app, host=host, port=port, lifespan="on",
                                    log_level=log_level, access_log=False,
                                    ws_per_message_deflate=False))
    loop = asyncio.get_running_loop()
    draining: list[asyncio.Task[None]] = []

    async def drain_then_stop() -> None:
        finished = await drain(app, drain_seconds)
        log.info("voice_drained", all_calls_finished=finished)
        server.should_exit = True

    def on_signal() -> None:
        if draining:
            server.should_exit = True
            return
        log.info("voice_draining", active_calls=len(app.state.voice.admission.active))
        draining.append(asyncio.create_task(drain_then_stop()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await server.serve(sockets=[sock] if sock is not None else None)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
