#!/usr/bin/env python
"""Idle benchmark: what an idle ``callfleet serve`` costs, and how soon its background loops
act on work an API request creates.

    .venv/bin/python bench/idle.py                                  # every configuration
    .venv/bin/python bench/idle.py --configs sqlite --samples 4 --idle-seconds 20   # smoke
    .venv/bin/python bench/idle.py --src /path/to/other/src ...     # another version

Configurations (each on a fresh data directory / PostgreSQL database):

* ``sqlite``: one ``callfleet serve`` (API and every loop in one process);
* ``postgres``: the same on PostgreSQL;
* ``postgres-split``: ``callfleet serve --no-worker`` (API) and one ``callfleet worker``
  (loops): work created by the API reaches the worker only through the database
  (``LISTEN/NOTIFY`` since docs/decisions/0020).

For each:

1. **idle CPU, empty**: after start-up and a team, ``--idle-seconds`` (60) of nothing; CPU
   time of the server process(es) from ``/proc`` as % of one core; on PostgreSQL also the
   database's transactions per minute (``pg_stat_database``).
2. **wake-up delay**: ``--samples`` times each, after a random quiet gap of 2-8 s (so the
   request lands anywhere in an idle loop's wait), an API write and the time until its
   effect reaches a webhook receiver in this process (wall clock, same machine):
   * ``webhook``: ``PATCH`` a contact -> its ``contact.updated`` delivery (the webhook
     sender's wake-up);
   * ``enroll``: add a contact to a running campaign -> its ``call.initiated`` delivery
     (the dialer's wake-up, then the sender's);
   * ``run``: ``POST /run`` of a new one-contact campaign -> its call's ``call.ringing``
     delivery (the API places the call; the dialer delivers the simulated network's
     events; then the sender).
3. **idle CPU, with data**: the same measure again, once everything has settled (a team
   with contacts, campaigns, calls, analyses, webhook deliveries, and one running campaign
   with nobody left to call).

The simulated carrier answers at once (``CALLFLEET_SIM_INSTANT``). Results:
bench/results/idle.json (or ``--out``), with the 1-minute load before each configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from webhooks import read_request  # bench/webhooks.py

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PG_ADMIN = os.environ.get("CALLFLEET_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONFIGS = ("sqlite", "postgres", "postgres-split")
SCENARIOS = ("webhook", "enroll", "run")


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, every thread


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- the webhook receiver


@dataclass
class Got:
    at: float
    type: str
    data: dict[str, Any]


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server in this process's event loop: answers 200, records each
    event's type, body and wall-clock receipt time."""

    got: list[Got] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, body = await read_request(reader)
                at = time.time()
                event = json.loads(body)
                self.got.append(Got(at, event["type"], event["data"]))
                self.changed.set()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def first(self, match: Callable[[Got], bool], since: float,
                    timeout: float = 30.0) -> Got:
        deadline = time.monotonic() + timeout
        while True:
            for g in self.got:
                if g.at >= since and match(g):
                    return g
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching webhook arrived")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass

    async def quiet(self, seconds: float, timeout: float = 60.0) -> None:
        """Until no webhook arrived for ``seconds`` (the previous sample's work is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.got[-1].at if self.got else 0.0
            if time.time() - last >= seconds:
                return
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------- the deployment


class Deployment:
    def __init__(self, config: str, args: argparse.Namespace) -> None:
        self.config, self.args = config, args
        self.workdir = Path(tempfile.mkdtemp(prefix=f"idle-{config}-"))
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pg_db: str | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
        self.env.update({
            "CALLFLEET_DATA_DIR": str(self.workdir / "data"), "PYTHONUNBUFFERED": "1",
            "CALLFLEET_SIM_INSTANT": "true", "CALLFLEET_SIM_MIX": "answer=100",
            "CALLFLEET_SIM_INVALID_PERCENT": "0", "CALLFLEET_LEGAL_HOURS_START": "00:00",
            "CALLFLEET_LEGAL_HOURS_END": "23:59", "CALLFLEET_LOG_LEVEL": "WARNING",
            "CALLFLEET_RATE_LIMIT_PER_MINUTE": "0",
            # The receiver is on loopback (the outbound URL policy refuses it otherwise).
            "CALLFLEET_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
        })
        if args.src:
            self.env["PYTHONPATH"] = str(args.src)

    async def create(self) -> None:
        if self.config.startswith("postgres"):
            import asyncpg

            self.pg_db = f"callfleet_idlebench_{uuid.uuid4().hex[:8]}"
            conn = await asyncpg.connect(PG_ADMIN)
            try:
                await conn.execute(f'CREATE DATABASE "{self.pg_db}"')
            finally:
                await conn.close()
            base = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1)
            self.env["CALLFLEET_DATABASE_URL"] = base.rsplit("/", 1)[0] + f"/{self.pg_db}"

    def cli(self, *args: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "callfleet.cli", *args], env=self.env,
                             cwd=self.workdir, capture_output=True, text=True, timeout=120,
                             check=True).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        logfile = open(self.workdir / f"{args[0]}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        p = subprocess.Popen([sys.executable, "-m", "callfleet.cli", *args], env=self.env,
                             cwd=self.workdir, stdout=logfile, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    async def start(self) -> None:
        serve = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.config == "postgres-split":
            serve.append("--no-worker")
        self.spawn(*serve)
        if self.config == "postgres-split":
            self.spawn("worker")
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                for p in self.procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"{p.args} exited with {p.returncode}")
                try:
                    if (await http.get(f"{self.base_url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> list[float]:
        return [cpu_seconds(p.pid) for p in self.procs]

    async def xacts(self) -> int | None:
        if self.pg_db is None:
            return None
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN)
        try:
            return int(await conn.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
                self.pg_db))
        finally:
            await conn.close()

    async def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        if self.pg_db:
            import asyncpg

            conn = await asyncpg.connect(PG_ADMIN)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
            finally:
                await conn.close()


# ---------------------------------------------------------------- the measures


async def idle_cpu(dep: Deployment, seconds: float) -> dict[str, Any]:
    x0, c0, t0 = await dep.xacts(), dep.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    x1, c1, t1 = await dep.xacts(), dep.cpu(), time.monotonic()
    per_process = [round(100 * (b - a) / (t1 - t0), 2) for a, b in zip(c0, c1, strict=True)]
    out: dict[str, Any] = {"seconds": round(t1 - t0, 1),
                           "cpu_percent_of_a_core": round(sum(per_process), 2),
                           "per_process": per_process}
    if x0 is not None and x1 is not None:
        out["pg_transactions_per_minute"] = round((x1 - x0) * 60 / (t1 - t0), 1)
    return out


class Api:
    def __init__(self, http: httpx.AsyncClient, team_id: str) -> None:
        self.http, self.team_id = http, team_id

    async def call(self, method: str, path: str, status: int = 200, **body: Any
                   ) -> dict[str, Any]:
        r = await self.http.request(method, path, json={"teamId": self.team_id, **body})
        if r.status_code != status:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return dict(r.json())


async def setup(api: Api, rx: Receiver) -> dict[str, Any]:
    await api.call("POST", "/api/webhooks", 201, url=rx.url)
    company = (await api.call("POST", "/api/crm/companies", 201, name="Idle Inc"))["company"]
    assistant = (await api.call("POST", "/api/assistants", 201, name="Setter",
                                templateId="outbound-setter"))["assistant"]
    offer = (await api.call("POST", "/api/phone-numbers/search",
                            filters={"countryCode": "US", "limit": 2}))["numbers"]
    numbers = [(await api.call("POST", "/api/phone-numbers/purchase", 201,
                               phoneNumber=n["phoneNumber"]))["phone_number"]["id"]
               for n in offer[:2]]
    await api.call("POST", f"/api/assistants/{assistant['id']}/phone-numbers",
                   phoneNumberIds=numbers)
    return {"company": company["id"], "assistant": assistant["id"], "numbers": numbers}


async def new_contact(api: Api, ctx: dict[str, Any]) -> str:
    n = ctx["contacts"] = ctx.get("contacts", 0) + 1
    c = await api.call("POST", "/api/crm/contacts", 201, companyId=ctx["company"],
                       firstName=f"Idle{n}", lastName="Bench", phone=f"+1212{3000000 + n:07d}",
                       timezone="America/New_York")
    return str(c["contact"]["id"])


async def new_campaign(api: Api, ctx: dict[str, Any], name: str, **extra: Any) -> str:
    c = await api.call("POST", "/api/crm/campaigns", 201, assistantId=ctx["assistant"],
                       companyId=ctx["company"], fromNumberIds=ctx["numbers"], name=name,
                       callWindowStart="00:00", callWindowEnd="23:59",
                       callWindowTimezone="America/New_York", maxConcurrentCalls=5,
                       maxAttemptsPerContact=1, **extra)
    return str(c["campaign"]["id"])


async def sample(api: Api, rx: Receiver, ctx: dict[str, Any], scenario: str
                 ) -> dict[str, float]:
    """One API write (prepared beforehand) and the time until its webhook arrives."""
    if scenario == "webhook":
        cid = ctx["webhook_contact"]
        ctx["title"] = ctx.get("title", 0) + 1
        t0 = time.time()
        await api.call("PATCH", f"/api/crm/contacts/{cid}", jobTitle=f"T{ctx['title']}")
        t1 = time.time()
        got = await rx.first(lambda g: g.type == "contact.updated"
                             and g.data["contact"]["id"] == cid, t0)
    elif scenario == "enroll":
        cid = await new_contact(api, ctx)
        await rx.quiet(1.0)  # (the contact create's own webhook)
        await asyncio.sleep(random.uniform(2, 8))
        t0 = time.time()
        await api.call("POST", f"/api/crm/campaigns/{ctx['running']}/contacts",
                       contactIds=[cid])
        t1 = time.time()
        got = await rx.first(lambda g: g.type == "call.initiated"
                             and g.data["call"]["contact_id"] == cid, t0)
    else:
        cid = await new_contact(api, ctx)
        camp = await new_campaign(api, ctx, f"Run {cid[-6:]}")
        await api.call("POST", f"/api/crm/campaigns/{camp}/contacts", contactIds=[cid])
        await rx.quiet(1.0)
        await asyncio.sleep(random.uniform(2, 8))
        t0 = time.time()
        await api.call("POST", f"/api/crm/campaigns/{camp}/run")
        t1 = time.time()
        got = await rx.first(lambda g: g.type == "call.ringing"
                             and g.data["call"]["contact_id"] == cid, t0)
    return {"delay": got.at - t0, "request": t1 - t0}


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": round(statistics.median(values), 4),
            "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))], 4),
            "max": round(values[-1], 4), "min": round(values[0], 4)}


async def run_config(config: str, args: argparse.Namespace) -> dict[str, Any]:
    dep = Deployment(config, args)
    out: dict[str, Any] = {"config": config, "load_before": load1()}
    rx = Receiver()
    await rx.start()
    await dep.create()
    try:
        await dep.start()
        team = dep.cli("team", "create", "--name", "Idle bench", "--json")
        log(f"{config}: up; idle for {args.idle_seconds:g} s (empty)")
        await asyncio.sleep(args.settle)
        out["idle_empty"] = await idle_cpu(dep, args.idle_seconds)
        log(f"{config}: idle empty {out['idle_empty']}")
        headers = {"Authorization": f"Bearer {team['api_key']}"}
        async with httpx.AsyncClient(base_url=dep.base_url, headers=headers,
                                     timeout=60) as http:
            api = Api(http, team["team_id"])
            ctx = await setup(api, rx)
            ctx["webhook_contact"] = await new_contact(api, ctx)
            first = await new_contact(api, ctx)
            ctx["running"] = await new_campaign(api, ctx, "Always on", noAutoComplete=True)
            await api.call("POST", f"/api/crm/campaigns/{ctx['running']}/contacts",
                           contactIds=[first])
            await api.call("POST", f"/api/crm/campaigns/{ctx['running']}/run")
            delays: dict[str, list[dict[str, float]]] = {s: [] for s in SCENARIOS}
            for i in range(args.samples):
                for scenario in SCENARIOS:
                    if scenario == "webhook":
                        await rx.quiet(1.0)
                        await asyncio.sleep(random.uniform(2, 8))
                    delays[scenario].append(await sample(api, rx, ctx, scenario))
                log(f"{config}: sample {i + 1}/{args.samples}: " + ", ".join(
                    f"{s} {delays[s][-1]['delay'] * 1000:.0f} ms" for s in SCENARIOS))
            out["wakeup_seconds"] = {s: {**summary([d["delay"] for d in v]),
                                         "request_p50": round(statistics.median(
                                             d["request"] for d in v), 4),
                                         "samples": [round(d["delay"], 4) for d in v]}
                                     for s, v in delays.items()}
        await rx.quiet(2.0)
        await asyncio.sleep(args.settle)
        out["idle_with_data"] = await idle_cpu(dep, args.idle_seconds)
        log(f"{config}: idle with data {out['idle_with_data']}")
        out["webhooks_received"] = len(rx.got)
    finally:
        await dep.stop()
        rx.server.close()
    shutil.rmtree(dep.workdir, ignore_errors=True)  # (kept, with the logs, after a failure)
    out["load_after"] = load1()
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [("| configuration | idle CPU, empty | idle CPU, with data | PG xacts/min (empty, "
              "data) | webhook p50 / p95 | enroll p50 / p95 | run p50 / p95 |"),
             "|---|---|---|---|---|---|---|"]
    for r in results:
        w = r["wakeup_seconds"]
        pg = (f"{r['idle_empty'].get('pg_transactions_per_minute', '–')}, "
              f"{r['idle_with_data'].get('pg_transactions_per_minute', '–')}")
        cells = [f"{w[s]['p50'] * 1000:.0f} / {w[s]['p95'] * 1000:.0f} ms" for s in SCENARIOS]
        lines.append(f"| {r['config']} | {r['idle_empty']['cpu_percent_of_a_core']} % | "
                     f"{r['idle_with_data']['cpu_percent_of_a_core']} % | {pg} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for config in args.configs:
        results.append(await run_config(config, args))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help="comma-separated subset of " + ", ".join(CONFIGS))
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds to wait before each idle measure")
    ap.add_argument("--samples", type=int, default=8, help="wake-up samples per scenario")
    ap.add_argument("--src", type=Path, default=None,
                    help="the src/ directory of the callfleet version to measure")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "idle.json")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if set(args.configs) - set(CONFIGS):
        ap.error(f"unknown configuration(s): {set(args.configs) - set(CONFIGS)}")
    random.seed(args.seed)
    results = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "src": str(args.src or ROOT / "src"), "results": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2) + "\n")
    print(table(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
