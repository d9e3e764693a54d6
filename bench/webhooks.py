#!/usr/bin/env python
"""Webhook benchmark: events per second delivered to a local receiver, and the lag from an
event's creation (its outbox commit) to its receipt.

    .venv/bin/python bench/webhooks.py --backend all                 # both databases (~2 min)
    .venv/bin/python bench/webhooks.py --backend sqlite --events 2000 --paced 1000 --rate 50

Two phases per backend, each on a fresh database with one team and one endpoint (``*``):

* backlog: ``--events`` events (5 per subject, like a call's initiated..completed, so the
  per-subject order rule is exercised) are committed to the outbox first; then one
  ``WebhookSender.run`` loop starts and the time until the receiver has every event gives
  events/s (the fan-out, claim, send and record path at full speed).
* paced: the sender runs while ``--paced`` events are emitted at ``--rate`` per second in
  small transactions (every 20 ms); lag = receipt time at the receiver - the event's
  ``created_at`` (both wall clock, same machine), reported as p50/p95/p99/max.

The receiver is a separate process (a minimal asyncio HTTP/1.1 keep-alive server) that
answers 200 at once and records (event id, receipt time); it checks nothing, so it is not
the bottleneck. The sender runs in this process with the default settings (32 in flight).
Results: bench/results/webhooks-<backend>.json, with ``uptime`` load before and after (the
machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import func, select

from callfleet.clock import Clock
from callfleet.config import Settings
from callfleet.db.migrate import migrate
from callfleet.db.session import Database, open_database
from callfleet.outbound import parse_networks
from callfleet.teams.principal import Principal
from callfleet.teams.service import create_team
from callfleet.webhooks import service as webhooks
from callfleet.webhooks.models import WebhookDelivery
from callfleet.webhooks.outbox import emit
from callfleet.webhooks.secrets import SecretBox
from callfleet.webhooks.sender import WebhookSender

PG_ADMIN = os.environ.get("CALLFLEET_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
RECEIVER_NETWORK = "127.0.0.1/32"
TYPES = ("call.initiated", "call.ringing", "call.answered", "call.hangup", "call.completed")


# ---------------------------------------------------------------- the receiver process

async def _receiver(port: int, out: str) -> None:
    got: list[tuple[str, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, event_id = 0, ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    key = name.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"callfleet-event-id":
                        event_id = value.strip().decode()
                await reader.readexactly(length)
                got.append((event_id, time.time()))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    Path(out).write_text("\n".join(f"{e} {t}" for e, t in got))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.out = tempfile.mktemp(prefix="wh-bench-", suffix=".txt")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--receiver", str(self.port), self.out],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def finish(self) -> dict[str, float]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        got: dict[str, float] = {}
        for line in Path(self.out).read_text().splitlines():
            event_id, t = line.split()
            got.setdefault(event_id, float(t))  # first receipt
        os.unlink(self.out)
        return got


# ---------------------------------------------------------------- setup and phases

async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fresh_db(backend: str) -> tuple[Database, str, Any]:
    if backend == "sqlite":
        tmp = tempfile.mkdtemp(prefix="wh-bench-")
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        cleanup = None
    else:
        name = f"callfleet_whbench_{uuid.uuid4().hex[:8]}"
        await _admin(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1)
        url = base.rsplit("/", 1)[0] + f"/{name}"
        cleanup = name
    db = open_database(url)
    await migrate(db)
    return db, url, cleanup


async def seed(db: Database, box: SecretBox, receiver_url: str) -> str:
    async with db.session() as s:
        team, _ = await create_team(s, f"Bench {uuid.uuid4().hex[:6]}")
        p = Principal(team.id, team.slug, "bench")
        await webhooks.create_endpoint(s, p, {"url": receiver_url}, box,
                                       parse_networks(RECEIVER_NETWORK))
        await s.commit()
    return team.id


async def emit_batch(db: Database, team_id: str, start: int, n: int) -> None:
    async with db.session() as s:
        now = datetime.now(UTC)
        for i in range(start, start + n):
            subject = f"call_bench{i // len(TYPES):08d}"
            emit(s, team_id, TYPES[i % len(TYPES)], {"call": {"id": subject, "n": i}}, now,
                 subject_id=subject)
        await s.commit()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run_sender_until(db: Database, settings: Settings, box: SecretBox,
                           done: Any) -> None:
    sender = WebhookSender(db, Clock(1.0), settings, box=box)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await done()
    finally:
        stop.set()
        await task


async def delivered(db: Database) -> int:
    async with db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(WebhookDelivery)
                                  .where(WebhookDelivery.status == "delivered")) or 0)


async def phase_backlog(backend: str, events: int, settings: Settings,
                        box: SecretBox) -> dict[str, Any]:
    db, _url, cleanup = await fresh_db(backend)
    rx = Receiver()
    try:
        team_id = await seed(db, box, rx.url)
        for start in range(0, events, 1000):
            await emit_batch(db, team_id, start, min(1000, events - start))
        t0 = time.time()

        async def done() -> None:
            while await delivered(db) < events:
                await asyncio.sleep(0.1)

        await run_sender_until(db, settings, box, done)
        elapsed = time.time() - t0
    finally:
        got = rx.finish()
        await db.dispose()
        if cleanup:
            await _admin(f'DROP DATABASE IF EXISTS "{cleanup}" WITH (FORCE)')
    last = max(got.values())
    return {"events": events, "received": len(got), "seconds": round(last - t0, 2),
            "events_per_second": round(len(got) / (last - t0), 1),
            "wall_seconds_until_all_recorded": round(elapsed, 2)}


async def phase_paced(backend: str, events: int, rate: float, settings: Settings,
                      box: SecretBox) -> dict[str, Any]:
    db, _url, cleanup = await fresh_db(backend)
    rx = Receiver()
    created: dict[str, float] = {}
    try:
        team_id = await seed(db, box, rx.url)

        async def done() -> None:
            t0 = time.monotonic()
            sent = 0
            while sent < events:
                due = min(events, int((time.monotonic() - t0) * rate) + 1)
                if due > sent:
                    await emit_batch(db, team_id, sent, due - sent)
                    sent = due
                await asyncio.sleep(0.02)
            while await delivered(db) < events:
                await asyncio.sleep(0.1)

        await run_sender_until(db, settings, box, done)
        from callfleet.webhooks.outbox import OutboxEvent

        async with db.session(write=False) as s:
            for event_id, at in await s.execute(select(OutboxEvent.id, OutboxEvent.created_at)):
                created[event_id] = at.timestamp()
    finally:
        got = rx.finish()
        await db.dispose()
        if cleanup:
            await _admin(f'DROP DATABASE IF EXISTS "{cleanup}" WITH (FORCE)')
    lags = [got[e] - created[e] for e in created if e in got]
    return {"events": events, "rate_per_second": rate, "received": len(got),
            "lag_seconds": {"p50": round(pct(lags, 0.50), 3), "p95": round(pct(lags, 0.95), 3),
                            "p99": round(pct(lags, 0.99), 3), "max": round(max(lags), 3),
                            "mean": round(statistics.fmean(lags), 3)}}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              check=False).stdout.strip()
    except OSError:
        return "unknown"


async def bench(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from cryptography.fernet import Fernet

    box = SecretBox([Fernet.generate_key()])
    # The receiver is on loopback, which tenant URLs may reach only when allowed.
    settings = Settings(webhook_tick_seconds=0.05, outbound_allowed_networks=RECEIVER_NETWORK)
    before = uptime()
    backlog = await phase_backlog(backend, args.events, settings, box)
    print(f"{backend} backlog: {backlog}", flush=True)
    paced = await phase_paced(backend, args.paced, args.rate, settings, box)
    print(f"{backend} paced: {paced}", flush=True)
    return {
        "backend": backend, "backlog": backlog, "paced": paced,
        "settings": {"max_in_flight": settings.webhook_max_in_flight,
                     "tick_seconds": settings.webhook_tick_seconds,
                     "batch": settings.webhook_batch},
        "uptime_before": before, "uptime_after": uptime(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    ap.add_argument("--events", type=int, default=10_000, help="backlog phase events")
    ap.add_argument("--paced", type=int, default=3_000, help="paced phase events")
    ap.add_argument("--rate", type=float, default=100.0,
                    help="paced events per second (keep it below the backlog rate)")
    ap.add_argument("--receiver", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receiver:
        asyncio.run(_receiver(int(args.receiver[0]), args.receiver[1]))
        return
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    RESULTS_DIR.mkdir(exist_ok=True)
    for backend in backends:
        result = asyncio.run(bench(backend, args))
        path = RESULTS_DIR / f"webhooks-{backend}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
