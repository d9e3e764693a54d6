#!/usr/bin/env python
"""Webhook benchmark: events per second delivered to a local receiver, beside a bare async
POST loop to the same receiver in the same run, and the lag from an event's creation (its
outbox commit) to its receipt.

    .venv/bin/python bench/webhooks.py --backend all                 # both databases (~3 min)
    .venv/bin/python bench/webhooks.py --backend sqlite --events 2000 --paced 1000 --rate 50
    .venv/bin/python bench/webhooks.py --src /path/to/other/src ...  # another version's sender

Three phases per backend, the last two each on a fresh database with one team and one
endpoint (``*``):

* bare: ``--events`` POSTs of the same bodies and headers to the same receiver, with no
  database: ``--endpoint-concurrency`` requests at once through the client the sender builds
  (``WebhookSender._new_client``), and again through a default ``httpx.AsyncClient`` with as
  many connections. What one node can POST at all; the sender's rate is quoted against it.
* backlog: ``--events`` events (5 per subject, like a call's initiated..completed, so the
  per-subject order rule is exercised) are committed to the outbox first; then one
  ``WebhookSender.run`` loop starts and the time until the receiver has every event gives
  events/s (the fan-out, claim, send and record path at full speed), and the CPU time of
  this process per delivery.
* paced: the sender runs while ``--paced`` events are emitted at ``--rate`` per second in
  small transactions (every 20 ms); lag = receipt time at the receiver - the event's
  ``created_at`` (both wall clock, same machine), reported as p50/p95/p99/max.

The receiver is a separate process (a minimal asyncio HTTP/1.1 keep-alive server) that
answers 200 at once and records (event id, receipt time); it checks nothing, so it is not
the bottleneck. The sender runs in this process with the default settings, on uvloop
(as ``callfleet serve`` and ``callfleet worker`` run).
Results: bench/results/webhooks-<backend>.json, with ``uptime`` load before and after (the
machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
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
# --src PATH: measure another version's sender (its src/ directory) with this script.
SRC = (Path(sys.argv[sys.argv.index("--src") + 1]).resolve() if "--src" in sys.argv
       else ROOT / "src")
sys.path.insert(0, str(SRC))

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
from callfleet.webhooks.signing import event_body

PG_ADMIN = os.environ.get("CALLFLEET_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
RECEIVER_NETWORK = "127.0.0.1/32"
TYPES = ("call.initiated", "call.ringing", "call.answered", "call.hangup", "call.completed")


# ---------------------------------------------------------------- the receiver process

async def read_request(reader: asyncio.StreamReader) -> tuple[dict[bytes, bytes], bytes]:
    """One HTTP/1.1 request with a Content-Length: its headers (lower-case names) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (
        line.partition(b":") for line in head.split(b"\r\n")[1:] if line)}
    return headers, await reader.readexactly(int(headers.get(b"content-length", b"0")))


async def _receiver(port: int, out: str) -> None:
    got: list[tuple[str, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                headers, _ = await read_request(reader)
                got.append((headers.get(b"callfleet-event-id", b"").decode(), time.time()))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # (cancelled: the receiver stops with connections open)
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
        cleanup = tmp
    else:
        name = f"callfleet_whbench_{uuid.uuid4().hex[:8]}"
        await _admin(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1)
        url = base.rsplit("/", 1)[0] + f"/{name}"
        cleanup = name
    db = open_database(url)
    await migrate(db)
    return db, url, cleanup


async def drop_db(cleanup: str) -> None:
    """Remove what ``fresh_db`` made: the SQLite directory or the PostgreSQL database."""
    if cleanup.startswith("/"):
        shutil.rmtree(cleanup, ignore_errors=True)
    else:
        await _admin(f'DROP DATABASE IF EXISTS "{cleanup}" WITH (FORCE)')


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


class ExtraSenders:
    """``--senders N``: N-1 more sender processes on the same database (PostgreSQL: they
    share the work through ``SKIP LOCKED``, as ``serve`` and ``worker`` on one node do).
    Each imports and connects first, then starts its ``WebhookSender.run`` loop on "go"."""

    def __init__(self, n: int, url: str, key: bytes, tick: float | None) -> None:
        env = {**os.environ, "BENCH_WEBHOOK_KEY": key.decode()}
        cmd = [sys.executable, __file__, "--sender", url, "--src", str(SRC)]
        if tick:
            cmd += ["--tick", str(tick)]
        self.procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       env=env, text=True) for _ in range(n)]
        for p in self.procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def go(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()

    def stop(self) -> float:
        """Stops them; returns their CPU seconds since "go"."""
        cpu = 0.0
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            out, _ = p.communicate(timeout=60)
            cpu += float(out.split()[-1]) if out.strip() else 0.0
        return cpu


async def _sender_process(url: str, tick: float | None) -> None:
    """One extra sender (``--senders``): ready, then run from "go" until SIGTERM; prints
    its CPU seconds."""
    db = open_database(url)
    box = SecretBox([os.environ["BENCH_WEBHOOK_KEY"].encode()])
    settings = Settings(outbound_allowed_networks=RECEIVER_NETWORK,
                        **({"webhook_tick_seconds": tick} if tick else {}))
    sender = WebhookSender(db, Clock(1.0), settings, box=box)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    cpu0 = time.process_time()
    await sender.run(stop)
    await db.dispose()
    print(f"{time.process_time() - cpu0:.4f}", flush=True)


async def run_sender_until(db: Database, settings: Settings, box: SecretBox,
                           done: Any, extra: ExtraSenders | None = None) -> None:
    sender = WebhookSender(db, Clock(1.0), settings, box=box)
    stop = asyncio.Event()
    if extra is not None:
        extra.go()
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


def _sender_client(settings: Settings, box: SecretBox) -> Any:
    """The client the sender builds (older versions: its ``client`` property)."""
    sender = WebhookSender(None, Clock(1.0), settings, box=box)  # type: ignore[arg-type]
    make = getattr(sender, "_new_client", None)
    return make() if make is not None else sender.client


async def _post_all(client: Any, url: str, events: int, concurrency: int) -> None:
    bodies = [event_body(f"evt_bare{i:08d}", TYPES[i % len(TYPES)], datetime.now(UTC),
                         {"call": {"id": f"call_bare{i // len(TYPES):08d}", "n": i}}).encode()
              for i in range(events)]
    todo = list(range(events - 1, -1, -1))

    async def worker() -> None:
        while todo:
            i = todo.pop()
            headers = {"Content-Type": "application/json", "User-Agent": "bench",
                       "Callfleet-Signature": "t=0,v1=0" * 8,
                       "Callfleet-Event-Id": f"evt_bare{i:08d}",
                       "Callfleet-Event-Type": TYPES[i % len(TYPES)],
                       "Callfleet-Delivery-Id": f"whd_bare{i:08d}",
                       "Callfleet-Delivery-Attempt": "1"}
            async with client.stream("POST", url, content=bodies[i], headers=headers) as r:
                async for _ in r.aiter_bytes():
                    pass

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def phase_bare(events: int, settings: Settings, box: SecretBox) -> dict[str, Any]:
    """POST the bodies the sender would send, with no database: the sender's own client,
    then a default httpx client, each with the endpoint's concurrency."""
    import httpx

    concurrency = getattr(settings, "webhook_endpoint_concurrency",
                          settings.webhook_max_in_flight)
    out: dict[str, Any] = {"concurrency": concurrency}
    for name in ("sender_client", "default_httpx"):
        rx = Receiver()
        client = (_sender_client(settings, box) if name == "sender_client" else
                  httpx.AsyncClient(limits=httpx.Limits(
                      max_connections=concurrency, max_keepalive_connections=concurrency)))
        cpu0, t0 = time.process_time(), time.time()
        try:
            await _post_all(client, rx.url, events, concurrency)
        finally:
            await client.aclose()
            got = rx.finish()
        cpu = time.process_time() - cpu0
        last = max(got.values())
        out[name] = {"requests": len(got), "per_second": round(len(got) / (last - t0), 1),
                     "cpu_ms_per_request": round(cpu * 1000 / events, 3)}
    return out


async def phase_backlog(backend: str, events: int, settings: Settings,
                        box: SecretBox, args: argparse.Namespace) -> dict[str, Any]:
    db, url, cleanup = await fresh_db(backend)
    rx = Receiver()
    extra: ExtraSenders | None = None
    try:
        team_id = await seed(db, box, rx.url)
        for start in range(0, events, 1000):
            await emit_batch(db, team_id, start, min(1000, events - start))
        if args.senders > 1:
            extra = ExtraSenders(args.senders - 1, url, args.key, args.tick)
        t0, cpu0 = time.time(), time.process_time()

        async def done() -> None:
            while await delivered(db) < events:
                await asyncio.sleep(0.1)

        await run_sender_until(db, settings, box, done, extra)
        elapsed = time.time() - t0
        cpu = time.process_time() - cpu0
        if extra is not None:
            cpu += extra.stop()
            extra = None
    finally:
        if extra is not None:
            extra.stop()
        got = rx.finish()
        await db.dispose()
        await drop_db(cleanup)
    last = max(got.values())
    return {"events": events, "received": len(got), "seconds": round(last - t0, 2),
            "events_per_second": round(len(got) / (last - t0), 1),
            "wall_seconds_until_all_recorded": round(elapsed, 2),
            "cpu_ms_per_delivery": round(cpu * 1000 / events, 3)}


async def phase_paced(backend: str, events: int, rate: float, settings: Settings,
                      box: SecretBox, args: argparse.Namespace) -> dict[str, Any]:
    db, url, cleanup = await fresh_db(backend)
    rx = Receiver()
    created: dict[str, float] = {}
    extra: ExtraSenders | None = None
    try:
        team_id = await seed(db, box, rx.url)
        if args.senders > 1:
            extra = ExtraSenders(args.senders - 1, url, args.key, args.tick)

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

        await run_sender_until(db, settings, box, done, extra)
        if extra is not None:
            extra.stop()
            extra = None
        try:
            from callfleet.webhooks.outbox import OutboxEvent
        except ImportError:  # a version before the table moved (--src)
            from callfleet.webhooks.models import OutboxEvent  # type: ignore[attr-defined,no-redef]

        async with db.session(write=False) as s:
            for event_id, at in await s.execute(select(OutboxEvent.id, OutboxEvent.created_at)):
                created[event_id] = at.timestamp()
    finally:
        if extra is not None:
            extra.stop()
        got = rx.finish()
        await db.dispose()
        await drop_db(cleanup)
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

    args.key = Fernet.generate_key()
    box = SecretBox([args.key])
    # The receiver is on loopback, which tenant URLs may reach only when allowed.
    settings = Settings(outbound_allowed_networks=RECEIVER_NETWORK,
                        **({"webhook_tick_seconds": args.tick} if args.tick else {}))
    before = uptime()
    bare = await phase_bare(args.events, settings, box)
    print(f"bare POST loop: {bare}", flush=True)
    backlog = await phase_backlog(backend, args.events, settings, box, args)
    backlog["ratio_to_bare_sender_client"] = round(
        backlog["events_per_second"] / bare["sender_client"]["per_second"], 3)
    backlog["ratio_to_bare_default_httpx"] = round(
        backlog["events_per_second"] / bare["default_httpx"]["per_second"], 3)
    print(f"{backend} backlog: {backlog}", flush=True)
    paced = await phase_paced(backend, args.paced, args.rate, settings, box, args)
    print(f"{backend} paced: {paced}", flush=True)
    return {
        "backend": backend, "src": str(SRC), "senders": args.senders, "bare": bare,
        "backlog": backlog, "paced": paced,
        "settings": {"max_in_flight": settings.webhook_max_in_flight,
                     "endpoint_concurrency": getattr(settings, "webhook_endpoint_concurrency",
                                                     None),
                     "tick_seconds": settings.webhook_tick_seconds,
                     "batch": settings.webhook_batch},
        "uptime_before": before, "uptime_after": uptime(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run(coro: Any) -> Any:
    """On uvloop when installed, as ``callfleet serve`` and ``callfleet worker`` run."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    # The receiver is on loopback (the outbound URL policy refuses it otherwise).
    os.environ.setdefault("CALLFLEET_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    ap.add_argument("--events", type=int, default=10_000, help="backlog phase events")
    ap.add_argument("--paced", type=int, default=3_000, help="paced phase events")
    ap.add_argument("--rate", type=float, default=200.0,
                    help="paced events per second (keep it below the backlog rate)")
    ap.add_argument("--tick", type=float, default=None,
                    help="CALLFLEET_WEBHOOK_TICK_SECONDS for the sender (default: the "
                         "product's)")
    ap.add_argument("--src", type=Path, default=None,
                    help="the src/ directory of the callfleet version to measure")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (one backend); default bench/results/webhooks-"
                         "<backend>.json")
    ap.add_argument("--senders", type=int, default=1,
                    help="sender processes on the database (this one plus N-1 more)")
    ap.add_argument("--receiver", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--sender", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receiver:
        run(_receiver(int(args.receiver[0]), args.receiver[1]))
        return
    if args.sender:
        run(_sender_process(args.sender, args.tick))
        return
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    RESULTS_DIR.mkdir(exist_ok=True)
    for backend in backends:
        result = run(bench(backend, args))
        path = args.out or RESULTS_DIR / f"webhooks-{backend}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
