#!/usr/bin/env python
"""Dialer benchmark: end-to-end call attempts per second, due-to-dial delay, database
statements per attempt, and the peak number of concurrent simulated calls of one node.

    .venv/bin/python bench/dialer.py --backend all                    # everything (~40 min)
    .venv/bin/python bench/dialer.py --backend sqlite --contacts 3000 --runs 1 \\
        --phases throughput,latency                                   # smoke run (~1 min)
    .venv/bin/python bench/dialer.py --table                          # markdown from JSON

What is measured (details and caveats in bench/README.md, section "Dialer"):

* throughput: a running campaign (window 00:00-23:59 in the contact's zone; every contact in
  a zone whose local time is 09:00-19:00 during the run, so inside the default legal hours
  08:00-21:00; maxAttempts 1, maxConcurrentCalls 500) with N contacts that become due once every
  dialer process is up and idle (--cold-start: due when they start), on the simulated carrier at full speed
  (CALLFLEET_SIM_INSTANT=true, CALLFLEET_SIM_MIX=answer=100, CALLFLEET_SIM_INVALID_PERCENT=0).
  SQLite: one in-process ``Dialer.run`` loop; PostgreSQL: 1, 2 and 4 ``callfleet worker``
  subprocesses (fresh database per run) plus one in-process loop (for statement counts).
  Attempts/s = terminal calls per second between the 10th and the 90th percentile of the
  calls' terminal times (``calls.updated_at``, written by ``finish_call``).
* latency: enrollments whose ``next_attempt_at`` are spread evenly at R per second over a
  window starting a few seconds after the dialers are up; delay = the moment the simulated
  network received the dial (``sim_calls.created_at``) minus the due time (also reported:
  ``calls.started_at`` - due, the claim).
* statements: a SQLAlchemy ``before_cursor_execute`` listener on the in-process dialer's
  engines (statements and commits per attempt, by verb and table); on PostgreSQL also the
  ``pg_stat_database.xact_commit`` delta of the benchmark database per attempt.
* concurrency: NOT instant; CALLFLEET_TIME_SCALE=1, answer=100, an assistant whose first
  message talks ~--talk-seconds, maxConcurrentCalls 10,000, 12,000 contacts, one
  ``callfleet worker``; samples campaign.active_calls, team.active_calls and the simulated
  network's live calls (sim_calls in ringing/answered) every second, and re-checks the peak
  afterwards from the simulated network's own call intervals.

Everything runs against 127.0.0.1; every subprocess is stopped in ``finally`` (SIGTERM, then
SIGKILL after 15 s) and every PostgreSQL database the run created is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import bindparam, event, insert, text

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.campaigns import lifecycle
from callfleet.campaigns import service as campaigns
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.cli import run_async
from callfleet.config import Settings
from callfleet.crm.models import Company, Contact
from callfleet.db.base import UTCDateTime, utcnow
from callfleet.db.migrate import migrate
from callfleet.db.session import Database, open_database
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.principal import Principal
from callfleet.teams.service import create_team

TARGET_APS = {"sqlite": 200.0, "postgres-4": 500.0}
TARGET_P95_S = 1.0
TARGET_CONCURRENT = 10_000
THROUGHPUT_MAX_CONCURRENT = 500

# Candidate zones for the contacts; the seed keeps those whose local time is 09:00-19:00 now
# (inside the default legal hours 08:00-21:00 with margin) - there always are some.
ZONES = (
    "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver",
    "America/Chicago", "America/New_York", "America/Sao_Paulo", "Atlantic/Azores",
    "Europe/London", "Europe/Berlin", "Europe/Athens", "Europe/Moscow", "Asia/Dubai",
    "Asia/Karachi", "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai", "Asia/Tokyo",
    "Australia/Brisbane", "Pacific/Noumea", "Pacific/Auckland", "Pacific/Tongatapu",
    "Pacific/Kiritimati", "Pacific/Pago_Pago",
)
AREAS = ("212", "312", "415", "617", "202", "305", "512", "206")

_PROCS: list[subprocess.Popen[bytes]] = []


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def rnd(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isinf(x)) else round(x, nd)


def aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# ============================================================== processes


def _kill_all() -> None:
    for p in _PROCS:
        stop_process(p, grace=3.0)


atexit.register(_kill_all)


def stop_process(p: subprocess.Popen[bytes], grace: float = 15.0,
                 sig: int = signal.SIGTERM) -> None:
    try:
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
    finally:
        if p in _PROCS:
            _PROCS.remove(p)


def spawn(cmd: list[str], env: dict[str, str] | None, logfile: Path) -> subprocess.Popen[bytes]:
    with logfile.open("ab") as fh:
        p = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True)
    _PROCS.append(p)
    return p


def attach_py_spy(pid: int, out: Path, rate: int = 50) -> subprocess.Popen[bytes] | None:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        exe_s = shutil.which("py-spy")
        if exe_s is None:
            log("py-spy not found; no profile")
            return None
        exe = Path(exe_s)
    return spawn([str(exe), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                  "--nonblocking", "--output", str(out)], None, out.with_suffix(".log"))


# ============================================================== load gate


def wait_for_quiet(max_load: float, max_wait: float) -> dict[str, Any]:
    """Poll the 1-minute load average until it is below ``max_load`` (bounded wait)."""
    start = time.monotonic()
    first = load1()
    seen = [first]
    while load1() >= max_load and time.monotonic() - start < max_wait:
        time.sleep(min(15.0, max(1.0, max_wait - (time.monotonic() - start))))
        seen.append(load1())
        if len(seen) % 4 == 0:
            log(f"waiting for load < {max_load}: now {seen[-1]} "
                f"({time.monotonic() - start:.0f}/{max_wait:.0f} s)")
    now = load1()
    return {"load1_before_wait": first, "load1_at_start": now,
            "waited_s": round(time.monotonic() - start, 1), "quiet": now < max_load}


# ============================================================== databases


@dataclass
class Ctx:
    args: argparse.Namespace
    workdir: Path
    pg_admin_dsn: str


async def pg_admin(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _dsn_with_db(dsn: str, db: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{db}"


@contextlib.asynccontextmanager
async def fresh_db(ctx: Ctx, backend: str) -> AsyncIterator[tuple[str, str | None]]:
    """Yield (sqlalchemy url, plain PG dsn or None) of a brand-new database; drop it after."""
    if backend == "sqlite":
        d = Path(tempfile.mkdtemp(prefix="sqlite-", dir=ctx.workdir))
        try:
            yield f"sqlite+aiosqlite:///{d / 'callfleet.db'}", None
        finally:
            if not ctx.args.keep:
                shutil.rmtree(d, ignore_errors=True)
        return
    name = f"callfleet_bench_dialer_{uuid.uuid4().hex[:8]}"
    await pg_admin(ctx.pg_admin_dsn, f'CREATE DATABASE "{name}"')
    dsn = _dsn_with_db(ctx.pg_admin_dsn, name)
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield url, dsn
    finally:
        if not ctx.args.keep:
            await pg_admin(ctx.pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ============================================================== seeding


@dataclass
class Seed:
    team_id: str
    campaign_id: str
    n: int
    zones: list[str]
    due: dict[str, datetime | None] = field(default_factory=dict)  # enrollment id -> due
    seconds: float = 0.0


def midday_zones(now: datetime, horizon_s: float = 3600.0) -> list[str]:
    out = []
    for z in ZONES:
        zi = ZoneInfo(z)
        ok = True
        for t in (now, now + timedelta(seconds=horizon_s)):
            local = t.astimezone(zi)
            if not (9 <= local.hour < 19):
                ok = False
        if ok:
            out.append(z)
    return out or ["America/New_York"]


def long_message(seconds: float) -> str:
    """A first message the scripted conversation takes ~``seconds`` to say (0.4 s a word)."""
    words = max(1, int((seconds - 1.0) / 0.4))
    base = ["Hello,", "this", "is", "Ava", "from", "Acme", "calling", "about", "your", "account", "and", "the", "new", "plan", "we", "talked", "about", "last", "month,", "and", "I", "would", "like", "to", "walk", "you", "through", "every", "detail", "of", "it", "now"]
    return " ".join(base[i % len(base)] for i in range(words))


async def seed(url: str, n: int, *, max_concurrent: int, due_rate: float | None = None,
               due_lead: float = 0.0, first_message: str = "Hi {{contact.first_name}}",
               max_attempts: int = 1, held: bool = False) -> Seed:
    """Team (default legal hours 08:00-21:00: every contact is in a zone where it is 09:00-19:00
    now), company, assistant, 4 numbers, ``n`` contacts and a running campaign (window
    00:00-23:59 every day, contact time zones) with all of them enrolled. With
    ``due_rate`` the i-th enrollment is due at (now + due_lead + i / due_rate); ``held``: due
    in a day (:func:`release` makes them due now); else due now."""
    t0 = time.perf_counter()
    db = open_database(url, pool_size=2)
    try:
        await migrate(db)
        zones = midday_zones(utcnow())
        async with db.session() as s:
            team, _ = await create_team(s, "Dialer bench")
            p = Principal(team.id, team.slug, "bench")
            now = utcnow()
            company = Company(id=ids.new_id("comp"), team_id=team.id, name="Bench Inc",
                              name_lower="bench inc", custom_fields={}, created_at=now,
                              updated_at=now)
            assistant = Assistant(id=ids.new_id("asst"), team_id=team.id, name="Bench",
                                  first_message=first_message, end_call={}, call_transfer={},
                                  info_extraction={}, outbound_enabled=True,
                                  voicemail_action="hangup", created_at=now, updated_at=now)
            s.add_all([company, assistant])
            await s.flush()
            numbers = []
            for k in range(4):
                pn = PhoneNumber(id=ids.new_id("pn"), team_id=team.id,
                                 assistant_id=assistant.id,
                                 phone_number=f"+1{AREAS[k]}55501{k:02d}", provider="sim",
                                 status="active", capabilities=["voice"], created_at=now,
                                 updated_at=now)
                s.add(pn)
                numbers.append(pn.id)
            await s.flush()
            contact_ids = []
            for start in range(0, n, 5000):
                rows = []
                for i in range(start, min(n, start + 5000)):
                    cid = ids.new_id("cont")
                    contact_ids.append(cid)
                    phone = f"+1{AREAS[i % len(AREAS)]}{2000000 + i:07d}"
                    rows.append({
                        "id": cid, "team_id": team.id, "company_id": company.id,
                        "first_name": f"C{i}", "last_name": "Bench", "phone": phone,
                        "do_not_call": False, "timezone": zones[i % len(zones)],
                        "lead_status": "new", "custom_fields": {}, "tags": [],
                        "search_text": f"c{i} bench {phone[1:]}", "created_at": now,
                        "updated_at": now,
                    })
                await s.execute(insert(Contact), rows)
            created = await campaigns.create_campaign(s, p, {
                "assistant_id": assistant.id, "company_id": company.id,
                "from_number_ids": numbers, "name": "dialer bench",
                "call_window_start": "00:00", "call_window_end": "23:59",
                "call_window_timezone": zones[0], "max_concurrent_calls": max_concurrent,
                "max_attempts_per_contact": max_attempts, "retry_delay_minutes": 60,
            }, now)
            base = utcnow() + timedelta(seconds=due_lead)
            due: dict[str, datetime | None] = {}
            for start in range(0, n, 5000):
                rows = []
                for i in range(start, min(n, start + 5000)):
                    eid = ids.new_id("cc")
                    at = (base + timedelta(seconds=i / due_rate) if due_rate
                          else base + timedelta(days=1) if held else None)
                    due[eid] = at
                    rows.append({
                        "id": eid, "team_id": team.id, "campaign_id": created["id"],
                        "contact_id": contact_ids[i], "status": "pending", "priority": 0,
                        "attempts": 0, "outcome_counts": {}, "answered": False,
                        "next_attempt_at": at, "created_at": now, "updated_at": now,
                    })
                await s.execute(insert(Enrollment), rows)
            c = await s.get(Campaign, created["id"])
            assert c is not None
            await lifecycle.transition(s, c, "running", utcnow())
            await s.commit()
            return Seed(team.id, created["id"], n, zones, due, time.perf_counter() - t0)
    finally:
        await db.dispose()


# ============================================================== statement counting


class StatementCounter:
    """Counts statements (by verb and table) and commits on a Database's engines."""

    _TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?([a-z_]+)', re.IGNORECASE)

    def __init__(self, db: Database) -> None:
        self.statements: Counter[str] = Counter()
        self.commits = 0
        self.rollbacks = 0
        self.enabled = False
        engines = {id(e.sync_engine): e.sync_engine for e in (db.write_engine, db.read_engine)}
        for eng in engines.values():
            event.listen(eng, "before_cursor_execute", self._stmt)
            event.listen(eng, "commit", self._commit)
            event.listen(eng, "rollback", self._rollback)

    def _stmt(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
              executemany: bool) -> None:
        if not self.enabled:
            return
        head = statement.lstrip().split(None, 1)
        verb = head[0].upper() if head else "?"
        m = self._TABLE.search(statement)
        self.statements[f"{verb} {m.group(1) if m else ''}".strip()] += 1

    def _commit(self, conn: Any) -> None:
        if self.enabled:
            self.commits += 1

    def _rollback(self, conn: Any) -> None:
        if self.enabled:
            self.rollbacks += 1


# ============================================================== running dialers


def dialer_env(url: str, *, instant: bool, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
    env.update({
        "CALLFLEET_DATABASE_URL": url, "CALLFLEET_CARRIER": "sim",
        "CALLFLEET_SIM_INSTANT": "true" if instant else "false",
        "CALLFLEET_SIM_MIX": "answer=100", "CALLFLEET_SIM_INVALID_PERCENT": "0",
        "CALLFLEET_TIME_SCALE": "1", "CALLFLEET_LOG_LEVEL": "WARNING",
    })
    env.update(extra)
    return env


def settings_from_env(env: dict[str, str]) -> Settings:
    kw = {k[len("CALLFLEET_"):].lower(): v for k, v in env.items() if k.startswith("CALLFLEET_")}
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


class Dialers:
    """N ``callfleet worker`` subprocesses, or one in-process ``Dialer.run`` loop."""

    def __init__(self, ctx: Ctx, url: str, workers: int, inprocess: bool, env: dict[str, str],
                 label: str, count_statements: bool = False) -> None:
        self.ctx, self.url, self.workers, self.inprocess = ctx, url, workers, inprocess
        self.env, self.label = env, label
        self.count_statements = count_statements
        self.procs: list[subprocess.Popen[bytes]] = []
        self.spies: list[subprocess.Popen[bytes]] = []
        self.counter: StatementCounter | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._db: Database | None = None
        self.started_at: datetime | None = None
        self.logfile = ctx.workdir / f"{label}.log"

    async def start(self) -> None:
        spy_dir: Path | None = self.ctx.args.py_spy
        if self.inprocess:
            from callfleet.app import build_dialer
            from callfleet.logging import configure

            settings = settings_from_env(self.env)
            configure(settings.log_level)  # as a worker does (WARNING in these runs)
            self._db = open_database(self.url, pool_size=5)
            await migrate(self._db)
            dialer = await build_dialer(settings, self._db)
            if self.count_statements:
                self.counter = StatementCounter(self._db)
                self.counter.enabled = True
            self.started_at = utcnow()
            if self.ctx.args.loops == "all":
                from callfleet.worker import run_background

                self._task = asyncio.create_task(
                    run_background(settings, self._db, dialer, self._stop))
            else:
                self._task = asyncio.create_task(dialer.run(self._stop))
            if spy_dir:
                spy = attach_py_spy(os.getpid(), spy_dir / f"{self.label}.txt")
                if spy:
                    self.spies.append(spy)
            return
        self.started_at = utcnow()
        cmd = ([sys.executable, "-m", "callfleet.cli", "worker"] if self.ctx.args.loops == "all"
               else [sys.executable, str(Path(__file__).resolve()), "--run-dialer"])
        for i in range(self.workers):
            p = spawn(cmd, self.env, self.logfile)
            self.procs.append(p)
            if spy_dir:
                spy = attach_py_spy(p.pid, spy_dir / f"{self.label}-w{i}.txt")
                if spy:
                    self.spies.append(spy)

    def pids(self) -> list[int]:
        return [os.getpid()] if self.inprocess else [p.pid for p in self.procs]

    def alive(self) -> bool:
        if self.inprocess:
            return self._task is not None and not self._task.done()
        return all(p.poll() is None for p in self.procs)

    async def stop(self) -> None:
        try:
            if self._task is not None:
                self._stop.set()
                try:
                    await asyncio.wait_for(self._task, 30)
                except (TimeoutError, asyncio.CancelledError):
                    self._task.cancel()
                if self.counter:
                    self.counter.enabled = False
            for p in self.procs:
                await asyncio.to_thread(stop_process, p)
        finally:
            for p in self.procs:
                stop_process(p, grace=1.0, sig=signal.SIGKILL)
            for spy in self.spies:
                # py-spy writes its file when the target exits, or on SIGINT.
                await asyncio.to_thread(stop_process, spy, 20.0, signal.SIGINT)
            if self._db is not None:
                await self._db.dispose()
                self._db = None


class Monitor:
    """A small read connection of the benchmark itself (not counted as dialer work)."""

    def __init__(self, url: str) -> None:
        self.db = open_database(url, pool_size=1)
        self.queries = 0

    async def scalar(self, sql: str, **params: Any) -> Any:
        self.queries += 1
        stmt = text(sql)
        for k, v in params.items():
            if isinstance(v, datetime):
                stmt = stmt.bindparams(bindparam(k, type_=UTCDateTime))
        async with self.db.session(write=False) as s:
            return (await s.execute(stmt, params)).scalar()

    async def row(self, sql: str, **params: Any) -> Any:
        self.queries += 1
        async with self.db.session(write=False) as s:
            return (await s.execute(text(sql), params)).one()

    async def close(self) -> None:
        await self.db.dispose()


async def pg_stats(dsn: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(_dsn_with_db(dsn, "postgres"))
    try:
        name = dsn.rpartition("/")[2]
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_returned, "
            "tup_fetched FROM pg_stat_database WHERE datname = $1", name)
        return dict(row) if row else {}
    finally:
        await conn.close()


async def pg_backends(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(_dsn_with_db(dsn, "postgres"))
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            dsn.rpartition("/")[2]))
    finally:
        await conn.close()


def cpu_snapshot(pids: list[int], dsn: str | None) -> dict[str, Any]:
    """CPU seconds so far of the dialer processes and of the PostgreSQL backends serving the
    benchmark database (matched by their process title), plus the machine's busy time."""
    import psutil

    out: dict[str, Any] = {"dialer": {}, "postgres": {}, "at": time.monotonic()}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            out["dialer"][pid] = t.user + t.system
    if dsn:
        name = f" {dsn.rpartition('/')[2]} "
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(proc.info["cmdline"] or [])
                if cmd.startswith("postgres:") and name in cmd:
                    t = proc.cpu_times()
                    out["postgres"][proc.pid] = t.user + t.system
    m = psutil.cpu_times()
    out["machine_busy"] = sum(m) - m.idle - getattr(m, "iowait", 0.0)
    return out


def cpu_delta(a: dict[str, Any], b: dict[str, Any], attempts: int) -> dict[str, Any]:
    wall = max(1e-9, b["at"] - a["at"])
    res: dict[str, Any] = {"wall_s": round(wall, 1)}
    for k in ("dialer", "postgres"):
        used = sum(v - a[k].get(pid, 0.0) for pid, v in b[k].items())
        res[f"{k}_cores"] = round(used / wall, 2)
        res[f"{k}_cpu_ms_per_attempt"] = round(1000 * used / max(1, attempts), 2)
    res["machine_busy_cores"] = round((b["machine_busy"] - a["machine_busy"]) / wall, 2)
    # Busy cores not explained by the dialers and their PostgreSQL backends: other jobs on
    # the machine (plus the PostgreSQL background writer/WAL writer, small).
    res["other_cores"] = round(max(0.0, res["machine_busy_cores"] - res["dialer_cores"]
                                   - res["postgres_cores"]), 2)
    return res


async def wait_done(mon: Monitor, seed: Seed, dialers: Dialers, deadline_s: float) -> bool:
    """Until no enrollment is pending or calling (bounded)."""
    end = time.monotonic() + deadline_s
    last_log = time.monotonic()
    while time.monotonic() < end:
        if not dialers.alive():
            log(f"a dialer died; see {dialers.logfile}")
            return False
        left = await mon.scalar(
            "SELECT count(*) FROM campaign_contacts WHERE campaign_id = :c "
            "AND status IN ('pending', 'calling')", c=seed.campaign_id)
        if left == 0:
            return True
        if time.monotonic() - last_log > 15:
            last_log = time.monotonic()
            log(f"  {seed.n - left}/{seed.n} done, load {load1()}")
        await asyncio.sleep(0.5)
    return False


async def collect(url: str, seed: Seed) -> dict[str, Any]:
    db = open_database(url, null_pool=True)
    try:
        async with db.session(write=False) as s:
            calls = list(await s.execute(text(
                "SELECT id, enrollment_id, attempt, status, outcome, started_at, updated_at "
                "FROM calls WHERE campaign_id = :c").columns(
                    started_at=UTCDateTime, updated_at=UTCDateTime), {"c": seed.campaign_id}))
            sims = {r.call_ref: aware(r.created_at) for r in await s.execute(text(
                "SELECT call_ref, created_at FROM sim_calls WHERE behaviour != 'fenced'"
            ).columns(created_at=UTCDateTime))}
            enr = dict(list(await s.execute(text(
                "SELECT status, count(*) FROM campaign_contacts WHERE campaign_id = :c "
                "GROUP BY status"), {"c": seed.campaign_id})))
            camp = (await s.execute(text(
                "SELECT status, active_calls FROM campaigns WHERE id = :c"),
                {"c": seed.campaign_id})).one()
            team_active = await s.scalar(text("SELECT active_calls FROM teams WHERE id = :t"),
                                         {"t": seed.team_id})
    finally:
        await db.dispose()
    keys = [(c.enrollment_id, c.attempt) for c in calls]
    checks = {
        "enrollments": {str(k): int(v) for k, v in enr.items()},
        "calls": len(calls),
        "calls_ended": sum(1 for c in calls if c.status == "ended"),
        "outcomes": dict(Counter(c.outcome for c in calls)),
        "duplicate_attempts": len(keys) - len(set(keys)),
        "dialed_twice": len(calls) - len({c.id for c in calls if c.id in sims}),
        "campaign_status": camp.status, "campaign_active_calls_end": int(camp.active_calls),
        "team_active_calls_end": int(team_active or 0),
    }
    checks["ok"] = (checks["calls_ended"] == seed.n and checks["duplicate_attempts"] == 0
                    and checks["enrollments"].get("completed", 0) == seed.n
                    and checks["campaign_active_calls_end"] == 0
                    and checks["team_active_calls_end"] == 0
                    and checks["campaign_status"] == "completed")
    return {"calls": calls, "sims": sims, "checks": checks}


def rate_stats(calls: list[Any], t_start: datetime) -> dict[str, Any]:
    ends = sorted(aware(c.updated_at) for c in calls if c.status == "ended")
    n = len(ends)
    if n < 10:
        return {"attempts": n}
    i10, i90 = int(0.1 * (n - 1)), int(0.9 * (n - 1))
    span = (ends[i90] - ends[i10]).total_seconds()
    total = (ends[-1] - t_start).total_seconds()
    return {
        "attempts": n,
        "steady_attempts_per_s": rnd((i90 - i10) / span if span > 0 else None, 1),
        "overall_attempts_per_s": rnd(n / total if total > 0 else None, 1),
        "first_terminal_after_s": rnd((ends[0] - t_start).total_seconds(), 2),
        "last_terminal_after_s": rnd(total, 2),
    }


# ============================================================== phases


async def release(url: str, seed: Seed) -> None:
    """Make every held enrollment of the campaign due now."""
    db = open_database(url, pool_size=1)
    try:
        async with db.session() as s:
            await s.execute(text("UPDATE campaign_contacts SET next_attempt_at = NULL "
                                 "WHERE campaign_id = :c AND status = 'pending'"),
                            {"c": seed.campaign_id})
            await s.commit()
    finally:
        await db.dispose()


async def wait_ready(dialers: Dialers, max_s: float = 120.0) -> float:
    """Until every dialer process has started and gone idle (imports, migrations and the first
    passes done): each used under 20 % of a core over two consecutive seconds (an idle
    worker polls the database several times a second; start-up keeps a core busy). Returns the
    seconds waited."""
    import psutil

    t0 = time.monotonic()
    if dialers.inprocess:
        return 0.0  # start() returned after migrating and building the dialer
    procs = [psutil.Process(pid) for pid in dialers.pids()]

    def cpu() -> list[float]:
        return [sum(p.cpu_times()[:2]) for p in procs]

    quiet, last = 0, cpu()
    while time.monotonic() - t0 < max_s:
        await asyncio.sleep(1.0)
        if not dialers.alive():
            raise RuntimeError(f"a dialer died while starting; see {dialers.logfile}")
        now = cpu()
        busy = max(b - a for a, b in zip(last, now, strict=True))
        last = now
        quiet = quiet + 1 if busy < 0.2 and min(now) > 0.5 else 0
        if quiet >= 2:
            break
    return round(time.monotonic() - t0, 1)


async def run_throughput(ctx: Ctx, backend: str, workers: int, inprocess: bool, n: int,
                         label: str, count_statements: bool) -> dict[str, Any]:
    args = ctx.args
    warm = not args.cold_start
    async with fresh_db(ctx, backend) as (url, dsn):
        sd = await seed(url, n, max_concurrent=THROUGHPUT_MAX_CONCURRENT, held=warm)
        log(f"{label}: seeded {n} contacts in {sd.seconds:.1f} s (zones {','.join(sd.zones)})")
        env = dialer_env(url, instant=True, extra=args.env)
        mon = Monitor(url)
        dialers = Dialers(ctx, url, workers, inprocess, env, label, count_statements)
        before = await pg_stats(dsn) if dsn else {}
        load_start = load1()
        ok = False
        try:
            await dialers.start()
            t_start = dialers.started_at
            if warm:
                waited = await wait_ready(dialers)
                await release(url, sd)
                t_start = utcnow()
                log(f"{label}: dialers idle after {waited} s; contacts released")
            assert t_start is not None
            cpu_a = cpu_snapshot(dialers.pids(), dsn)
            ok = await wait_done(mon, sd, dialers, args.max_seconds)
            cpu_b = cpu_snapshot(dialers.pids(), dsn)
        finally:
            await dialers.stop()
            await mon.close()
        load_end = load1()
        mon_queries = mon.queries
        after: dict[str, int] = {}
        if dsn:
            await asyncio.sleep(1.5)  # backends flush their stats at exit
            after = await pg_stats(dsn)
        res = await collect(url, sd)
    out: dict[str, Any] = {
        "label": label, "backend": backend, "workers": workers, "inprocess": inprocess,
        "contacts": n, "finished": ok, "load1_start": load_start, "load1_end": load_end,
        **rate_stats(res["calls"], t_start), "checks": res["checks"],
    }
    attempts = max(1, out["attempts"])
    # CPU from the moment the contacts became due (warm, the default) or from the dialers'
    # start incl. a worker's import/migrate (--cold-start) to the last attempt.
    out["cpu"] = cpu_delta(cpu_a, cpu_b, attempts)
    if dialers.counter is not None:
        c = dialers.counter
        total = sum(c.statements.values())
        out["statements_per_attempt"] = round(total / attempts, 2)
        out["commits_per_attempt"] = round(c.commits / attempts, 2)
        out["rollbacks_per_attempt"] = round(c.rollbacks / attempts, 2)
        out["statements_by_kind_per_attempt"] = {
            k: round(v / attempts, 3) for k, v in c.statements.most_common()}
    if before and after:
        # The monitor's reads end in ROLLBACK (SQLAlchemy session close); subtract them.
        out["pg_xact_commit_per_attempt"] = round(
            (after["xact_commit"] - before["xact_commit"]) / attempts, 2)
        out["pg_xact_rollback_per_attempt"] = round(
            (after["xact_rollback"] - before["xact_rollback"] - mon_queries) / attempts, 2)
        out["pg_tuples_per_attempt"] = {
            k: round((after[k] - before[k]) / attempts, 1)
            for k in ("tup_inserted", "tup_updated", "tup_fetched")}
    log(f"{label}: {out.get('steady_attempts_per_s')} attempts/s steady "
        f"({out.get('overall_attempts_per_s')} overall), checks ok={res['checks']['ok']}, "
        f"load {load_start}->{load_end}")
    return out


async def run_latency(ctx: Ctx, backend: str, workers: int, inprocess: bool, rate: float,
                      label: str) -> dict[str, Any]:
    args = ctx.args
    n = max(50, int(rate * args.latency_seconds))
    lead = 3.0 if inprocess else 10.0
    async with fresh_db(ctx, backend) as (url, dsn):
        sd = await seed(url, n, max_concurrent=THROUGHPUT_MAX_CONCURRENT, due_rate=rate,
                        due_lead=lead)
        first_due = min(d for d in sd.due.values() if d is not None)
        last_due = max(d for d in sd.due.values() if d is not None)
        env = dialer_env(url, instant=True, extra=args.env)
        mon = Monitor(url)
        dialers = Dialers(ctx, url, workers, inprocess, env, label)
        load_start = load1()
        ready_at: datetime | None = None
        ok = False
        try:
            await dialers.start()
            if dsn:  # ready = every worker holds a connection (it has run a pass)
                end = time.monotonic() + 60
                while time.monotonic() < end and await pg_backends(dsn) < workers + 0:
                    await asyncio.sleep(0.2)
            ready_at = utcnow()
            cpu_a = cpu_snapshot(dialers.pids(), dsn)
            if ready_at > first_due:
                log(f"{label}: dialers ready {(ready_at - first_due).total_seconds():.1f} s "
                    "after the first due time; those contacts are excluded")
            # Bounded: contacts not dialed latency_drain s after the last due time count as
            # never dialed (infinite delay), so an overloaded config ends in bounded time.
            drain = (last_due - utcnow()).total_seconds() + args.latency_drain
            ok = await wait_done(mon, sd, dialers, min(args.max_seconds, max(5.0, drain)))
            cpu_b = cpu_snapshot(dialers.pids(), dsn)
        finally:
            await dialers.stop()
            await mon.close()
        load_end = load1()
        res = await collect(url, sd)
    assert ready_at is not None
    cut = ready_at + timedelta(seconds=1)
    by_enr = {c.enrollment_id: c for c in res["calls"]}
    dial, claim = [], []
    missing = 0
    for eid, due in sd.due.items():
        assert due is not None
        if due < cut:
            continue
        c = by_enr.get(eid)
        if c is None or c.id not in res["sims"]:
            missing += 1
            dial.append(math.inf)
            claim.append(math.inf)
            continue
        dial.append((res["sims"][c.id] - due).total_seconds())
        claim.append((aware(c.started_at) - due).total_seconds())
    out = {
        "label": label, "backend": backend, "workers": workers, "inprocess": inprocess,
        "offered_rate_per_s": rate, "contacts": n, "measured_contacts": len(dial),
        "not_dialed": missing, "gave_up_after_last_due_s": args.latency_drain,
        "finished": ok, "load1_start": load_start, "load1_end": load_end,
        "due_to_dial_s": {"p50": rnd(pct(dial, 50)), "p95": rnd(pct(dial, 95)),
                          "p99": rnd(pct(dial, 99)), "max": rnd(max(dial) if dial else None)},
        "due_to_claim_s": {"p50": rnd(pct(claim, 50)), "p95": rnd(pct(claim, 95)),
                           "p99": rnd(pct(claim, 99))},
        "early_dials": sum(1 for d in claim if d < 0),
        "span_due_s": round((last_due - first_due).total_seconds(), 2),
        **{k: v for k, v in rate_stats(res["calls"], first_due).items()
           if k in ("attempts", "last_terminal_after_s")},
        "checks": res["checks"],
        "cpu": cpu_delta(cpu_a, cpu_b, len(res["calls"])),
    }
    log(f"{label}: offered {rate}/s, due->dial p50 {out['due_to_dial_s']['p50']} s "
        f"p95 {out['due_to_dial_s']['p95']} s, not dialed {missing}, load {load_start}->"
        f"{load_end}")
    return out


async def run_concurrency(ctx: Ctx, backend: str, lease: float | None) -> dict[str, Any]:
    args = ctx.args
    n, limit = args.concurrency_contacts, args.concurrency_limit
    label = f"{backend}-concurrency" + (f"-lease{lease:g}" if lease else "")
    extra = dict(args.env)
    if lease:
        extra["CALLFLEET_LEASE_SECONDS"] = str(lease)
    async with fresh_db(ctx, backend) as (url, dsn):
        sd = await seed(url, n, max_concurrent=limit,
                        first_message=long_message(args.talk_seconds))
        log(f"{label}: seeded {n} contacts in {sd.seconds:.1f} s; limit {limit}, "
            f"talk ~{args.talk_seconds:.0f} s")
        env = dialer_env(url, instant=False, extra=extra)
        mon = Monitor(url)
        dialers = Dialers(ctx, url, 1, backend == "sqlite", env, label)
        samples: list[dict[str, Any]] = []
        load_start = load1()
        plateau_since: float | None = None
        stop_reason = "deadline"
        t0 = time.monotonic()
        rss_peak = 0
        try:
            await dialers.start()
            cpu_a = cpu_snapshot(dialers.pids(), dsn)
            cpu_b = cpu_a
            end = t0 + args.concurrency_max_seconds
            while time.monotonic() < end:
                if not dialers.alive():
                    stop_reason = "dialer died"
                    break
                now = utcnow()
                camp = await mon.row(
                    "SELECT active_calls, (SELECT active_calls FROM teams WHERE id = :t) "
                    "FROM campaigns WHERE id = :c", c=sd.campaign_id, t=sd.team_id)
                live = await mon.row(
                    "SELECT count(*), coalesce(sum(CASE WHEN state = 'answered' THEN 1 ELSE 0 "
                    "END), 0) FROM sim_calls WHERE state IN ('ringing', 'answered')")
                placed = await mon.scalar("SELECT count(*) FROM sim_calls")
                oldest = aware(await mon.scalar(
                    "SELECT min(next_event_at) FROM sim_calls WHERE next_event_at <= :now",
                    now=now))
                lag = (now - oldest).total_seconds() if oldest else 0.0
                if dialers.procs:
                    with contextlib.suppress(Exception):
                        import psutil

                        rss_peak = max(rss_peak, psutil.Process(dialers.procs[0].pid)
                                       .memory_info().rss)
                s = {"t": round(time.monotonic() - t0, 1), "campaign_active": int(camp[0]),
                     "team_active": int(camp[1]), "sim_live": int(live[0]),
                     "sim_answered": int(live[1]), "placed": int(placed),
                     "event_lag_s": round(lag, 2), "load1": load1()}
                samples.append(s)
                if len(samples) % 15 == 0:
                    log(f"  t={s['t']}s active={s['campaign_active']} live={s['sim_live']} "
                        f"answered={s['sim_answered']} placed={s['placed']} "
                        f"lag={s['event_lag_s']}s load={s['load1']}")
                if s["campaign_active"] >= limit:
                    plateau_since = plateau_since or time.monotonic()
                    if time.monotonic() - plateau_since >= args.plateau_seconds:
                        stop_reason = "plateau held"
                        break
                else:
                    plateau_since = None
                if placed >= n and s["sim_live"] == 0:
                    stop_reason = "all calls done"
                    break
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0) % 1.0))
            cpu_b = cpu_snapshot(dialers.pids(), dsn)
        finally:
            stopped_at = utcnow()
            await dialers.stop()
            await mon.close()
        load_end = load1()
        db = open_database(url, null_pool=True)
        try:
            async with db.session(write=False) as s:
                spans = list(await s.execute(text(
                    "SELECT created_at, ended_at FROM sim_calls WHERE behaviour != 'fenced'"
                ).columns(created_at=UTCDateTime, ended_at=UTCDateTime)))
                durations = [r[0] for r in await s.execute(text(
                    "SELECT duration_seconds FROM calls WHERE status = 'ended' "
                    "AND duration_seconds IS NOT NULL"))]
                cal = list(await s.execute(text(
                    "SELECT status, count(*) FROM calls GROUP BY status")))
        finally:
            await db.dispose()
    points: list[tuple[datetime, int]] = []
    for created, ended in spans:
        points.append((aware(created), 1))
        points.append((aware(ended) if ended else stopped_at + timedelta(days=1), -1))
    level = peak = 0
    for _, d in sorted(points, key=lambda p: (p[0], p[1])):
        level += d
        peak = max(peak, level)
    first_full = next((x["t"] for x in samples if x["campaign_active"] >= limit), None)
    plateau = [x for x in samples if x["campaign_active"] >= limit]
    out = {
        "label": label, "backend": backend, "workers": 1, "contacts": n,
        "max_concurrent_calls": limit, "talk_seconds": args.talk_seconds,
        "lease_seconds": lease or Settings(_env_file=None).lease_seconds,  # type: ignore
        "stop_reason": stop_reason,
        "load1_start": load_start, "load1_end": load_end,
        "max_campaign_active_calls": max((x["campaign_active"] for x in samples), default=0),
        "max_team_active_calls": max((x["team_active"] for x in samples), default=0),
        "max_sim_live_calls": max((x["sim_live"] for x in samples), default=0),
        "max_sim_answered_calls": max((x["sim_answered"] for x in samples), default=0),
        "peak_from_sim_intervals": peak,
        "seconds_to_reach_limit": first_full,
        "plateau_seconds_held": round(plateau[-1]["t"] - plateau[0]["t"], 1) if plateau else 0,
        "max_event_lag_s": max((x["event_lag_s"] for x in samples), default=None),
        "p95_event_lag_s": pct([x["event_lag_s"] for x in samples], 95),
        "calls_by_status_at_stop": {str(k): int(v) for k, v in cal},
        "ended_call_duration_s_median": median(durations) if durations else None,
        "worker_rss_peak_mb": round(rss_peak / 2**20, 1) if rss_peak else None,
        "cpu": cpu_delta(cpu_a, cpu_b, len(spans)),
        "samples": samples,
    }
    out["limit_never_exceeded"] = (out["max_campaign_active_calls"] <= limit
                                   and out["max_sim_live_calls"] <= limit and peak <= limit)
    log(f"{label}: peak campaign.active_calls {out['max_campaign_active_calls']}, sim live "
        f"{out['max_sim_live_calls']}, interval peak {peak}, limit never exceeded "
        f"{out['limit_never_exceeded']} ({stop_reason})")
    return out


# ============================================================== orchestration


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for label, runs in results.get("throughput", {}).items():
        summary[label] = {
            "runs": len(runs),
            "steady_attempts_per_s_median": median(
                [r.get("steady_attempts_per_s") for r in runs]),
            "steady_attempts_per_s_all": [r.get("steady_attempts_per_s") for r in runs],
            "overall_attempts_per_s_median": median(
                [r.get("overall_attempts_per_s") for r in runs]),
            "statements_per_attempt": median(
                [r["statements_per_attempt"] for r in runs if "statements_per_attempt" in r]),
            "commits_per_attempt": median(
                [r["commits_per_attempt"] for r in runs if "commits_per_attempt" in r]),
            "pg_xact_commit_per_attempt": median(
                [r["pg_xact_commit_per_attempt"] for r in runs
                 if "pg_xact_commit_per_attempt" in r]),
            "dialer_cpu_ms_per_attempt": median(
                [r["cpu"]["dialer_cpu_ms_per_attempt"] for r in runs if "cpu" in r]),
            "postgres_cpu_ms_per_attempt": median(
                [r["cpu"]["postgres_cpu_ms_per_attempt"] for r in runs if "cpu" in r]),
            "machine_busy_cores": median(
                [r["cpu"]["machine_busy_cores"] for r in runs if "cpu" in r]),
            "other_cores": [r["cpu"]["other_cores"] for r in runs if "cpu" in r],
            "disturbed_runs": sum(1 for r in runs if r.get("disturbed")),
            "all_checks_ok": all(r["checks"]["ok"] for r in runs),
            "load1": [r["load1_start"] for r in runs],
        }
    for label, runs in results.get("latency", {}).items():
        for r in runs:
            key = f"{label}@{r['offered_rate_per_s']:g}/s"
            summary.setdefault("latency", {})[key] = {
                "p50_s": r["due_to_dial_s"]["p50"], "p95_s": r["due_to_dial_s"]["p95"],
                "p95_claim_s": r["due_to_claim_s"]["p95"], "not_dialed": r["not_dialed"],
                "measured": r["measured_contacts"], "gave_up_s": r["gave_up_after_last_due_s"],
                "load1": r["load1_start"],
            }
    return summary


def verdicts(backend: str, summary: dict[str, Any], conc: dict[str, Any] | None,
             suffix: str = "") -> dict[str, Any]:
    v: dict[str, Any] = {}
    if backend == "sqlite" and f"sqlite-inproc-1{suffix}" in summary:
        got = summary[f"sqlite-inproc-1{suffix}"]["steady_attempts_per_s_median"]
        v["sqlite_attempts_per_s"] = {"target": 200, "got": got,
                                      "met": got is not None and got >= 200}
    if backend == "postgres" and f"postgres-workers-4{suffix}" in summary:
        got = summary[f"postgres-workers-4{suffix}"]["steady_attempts_per_s_median"]
        v["postgres_4_workers_attempts_per_s"] = {"target": 500, "got": got,
                                                  "met": got is not None and got >= 500}
    lat = summary.get("latency", {})
    target_key = (f"sqlite-inproc-1{suffix}@200/s" if backend == "sqlite"
                  else f"postgres-workers-4{suffix}@500/s")
    if target_key in lat:
        p95 = lat[target_key]["p95_s"]
        v["p95_due_to_dial_at_target_load"] = {
            "target_s": 1.0, "got_s": p95, "at": target_key,
            "met": p95 is not None and p95 <= 1.0 and lat[target_key]["not_dialed"] == 0}
    if conc:
        got = conc["max_campaign_active_calls"]
        v["concurrent_sim_calls_one_node"] = {
            "target": TARGET_CONCURRENT, "got": got,
            "met": got >= TARGET_CONCURRENT and conc["limit_never_exceeded"],
            "limit_never_exceeded": conc["limit_never_exceeded"]}
    return v


def env_info(args: argparse.Namespace) -> dict[str, Any]:
    def ver(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True, check=False).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT,
                                capture_output=True, text=True, check=False).stdout.strip())
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "git": rev,
        "src_dirty": dirty, "python": platform.python_version(),
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "sqlalchemy": ver("sqlalchemy"), "asyncpg": ver("asyncpg"),
        "aiosqlite": ver("aiosqlite"), "argv": sys.argv[1:], "loops": args.loops,
        "dialer_env_overrides": args.env,
        "settings_defaults": {k: getattr(Settings(_env_file=None), k) for k in  # type: ignore
                              ("dialer_tick_seconds", "dialer_batch", "lease_seconds",
                               "team_max_concurrent_calls")},
    }


async def bench_backend(ctx: Ctx, backend: str) -> dict[str, Any]:
    args = ctx.args
    results: dict[str, Any] = {"throughput": {}, "latency": {}}
    configs: list[tuple[str, int, bool, bool]] = []  # label, workers, inprocess, count stmts
    suffix = "" if args.loops == "all" else "-dialer-only"
    if backend == "sqlite":
        configs.append((f"sqlite-inproc-1{suffix}", 1, True, True))
    else:
        if "statements" in args.phases:
            configs.append((f"postgres-inproc-1{suffix}", 1, True, True))
        for w in args.workers:
            configs.append((f"postgres-workers-{w}{suffix}", w, False, False))
    gate_log: list[dict[str, Any]] = []

    def gate(what: str) -> None:
        if args.max_load > 0:
            g = wait_for_quiet(args.max_load, args.max_wait)
            g["before"] = what
            gate_log.append(g)
            if not g["quiet"]:
                log(f"load still {g['load1_at_start']} after {g['waited_s']} s; measuring "
                    "anyway (recorded)")

    if "throughput" in args.phases or "statements" in args.phases:
        for label, workers, inproc, count in configs:
            if "throughput" not in args.phases and not count:
                continue
            runs = 1 if (inproc and backend == "postgres") else args.runs
            for i in range(runs):
                for attempt in range(1 + args.retries):
                    gate(f"{label} run {i + 1}")
                    r = await run_throughput(ctx, backend, workers, inproc, args.contacts,
                                             label, count)
                    other = r["cpu"]["other_cores"]
                    r["disturbed"] = other > args.max_other_cores
                    if not r["disturbed"] or attempt == args.retries:
                        break
                    log(f"{label}: other jobs used {other} cores during the run; repeating "
                        "it once the machine is quiet")
                    results.setdefault("discarded", []).append(r)
                results["throughput"].setdefault(label, []).append(r)
    if "latency" in args.phases:
        target = TARGET_APS["sqlite"] if backend == "sqlite" else TARGET_APS["postgres-4"]
        for label, workers, inproc, _count in configs:
            if backend == "postgres" and inproc:
                continue
            rates = [target]
            measured = median([r.get("steady_attempts_per_s")
                               for r in results["throughput"].get(label, [])])
            if args.latency_rates:
                rates = list(args.latency_rates)
            elif measured:
                light = float(max(10, int(measured * args.light_fraction)))
                if light < target:
                    rates.append(light)
            for rate in rates:
                gate(f"{label} latency {rate}/s")
                r = await run_latency(ctx, backend, workers, inproc, rate, label)
                results["latency"].setdefault(label, []).append(r)
    conc = None
    if "concurrency" in args.phases and backend in args.concurrency_backends:
        results["concurrency_runs"] = []
        for lease in args.concurrency_leases:
            gate(f"concurrency lease {lease or 'default'}")
            r = await run_concurrency(ctx, backend, lease)
            results["concurrency_runs"].append(r)
        conc = results["concurrency_runs"][0]  # the product defaults decide the verdict
    summary = summarize(results)
    return {"env": env_info(args), "load_gate": gate_log, "summary": summary,
            "verdicts": verdicts(backend, summary, conc, suffix), **results}


# ============================================================== table


def table(paths: list[Path]) -> str:
    lines = [
        ("| backend / config | attempts/s steady (median; runs) | statements / attempt "
         "(commits) | PG xact_commit / attempt | CPU ms / attempt: dialer + PG (machine "
         "busy cores) | p95 due→dial @ offered load | load1 at start |"),
        "|---|---|---|---|---|---|---|",
    ]
    conc_lines = []
    verdict_lines = []
    for p in paths:
        data = json.loads(p.read_text())
        summ = data.get("summary", {})
        lat = summ.get("latency", {})
        for label, s in summ.items():
            if label == "latency":
                continue
            aps = s["steady_attempts_per_s_median"]
            runs = ", ".join(f"{x:g}" for x in s["steady_attempts_per_s_all"] if x is not None)
            stm = (f"{s['statements_per_attempt']:g} ({s['commits_per_attempt']:g})"
                   if s.get("statements_per_attempt") is not None else "–")
            xact = (f"{s['pg_xact_commit_per_attempt']:g}"
                    if s.get("pg_xact_commit_per_attempt") is not None else "–")
            lats = "; ".join(
                (f"{v['p95_s']:g} s" if v["p95_s"] is not None else "∞")
                + f" @ {k.split('@')[1]}"
                + (f" ({v['not_dialed']}/{v.get('measured')} not dialed "
                   f"{v.get('gave_up_s')} s after the last due time)" if v["not_dialed"] else "")
                for k, v in lat.items() if k.split("@")[0] == label) or "–"
            cpu = (f"{s['dialer_cpu_ms_per_attempt']:g} + {s['postgres_cpu_ms_per_attempt']:g}"
                   f" ({s['machine_busy_cores']:g})"
                   if s.get("dialer_cpu_ms_per_attempt") is not None else "–")
            lines.append(f"| {label} | {aps if aps is not None else '–'} ({runs}) | {stm} | "
                         f"{xact} | {cpu} | {lats} | "
                         f"{', '.join(str(x) for x in s['load1'])} |")
        for c in data.get("concurrency_runs", []):
            conc_lines.append(
                f"| {c['label']} (lease {c['lease_seconds']:g} s) | {c['max_concurrent_calls']} | "
                f"{c['contacts']} | "
                f"{c['max_campaign_active_calls']} | {c['max_sim_live_calls']} "
                f"({c['max_sim_answered_calls']} answered) | {c['peak_from_sim_intervals']} | "
                f"{c['seconds_to_reach_limit']} | {c['plateau_seconds_held']} | "
                f"{c['max_event_lag_s']} | {c['limit_never_exceeded']} | "
                f"{c['load1_start']}→{c['load1_end']} |")
        for k, v in data.get("verdicts", {}).items():
            verdict_lines.append(f"| {k} | {v.get('target', v.get('target_s'))} | "
                                 f"{v.get('got', v.get('got_s'))} | "
                                 f"{'met' if v['met'] else 'MISSED'} |")
    out = "\n".join(lines)
    if conc_lines:
        out += ("\n\n| concurrency run | limit | contacts | max campaign.active_calls | "
                "max sim live calls | peak (sim intervals) | s to reach limit | plateau held "
                "s | max event lag s | never above limit | load1 |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(conc_lines))
    if verdict_lines:
        out += ("\n\n| target | wanted | got | verdict |\n|---|---|---|---|\n"
                + "\n".join(verdict_lines))
    return out


def summarize_profile(path: Path, top: int = 25) -> str:
    """Summary of a py-spy raw (collapsed) profile: inclusive share of callfleet functions,
    self share of all functions, and the callfleet callers of database round trips."""
    def name(frame: str) -> str:
        fn, _, loc = frame.partition(" (")
        loc = loc.split(":")[0]
        loc = loc.split("callfleet/")[-1] if "callfleet/" in loc else loc.rsplit("/", 1)[-1]
        return f"{fn} ({loc})"

    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    db_callers: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        k = int(n)
        total += k
        frames = stack.split(";")
        ours = [name(f) for f in frames if "callfleet/" in f]
        for f in set(ours):
            incl[f] += k
        if frames:
            own[name(frames[-1])] += k
        if any(x in stack for x in ("asyncpg", "aiosqlite", "sqlite3")) and ours:
            db_callers[ours[-1]] += k
    total = max(total, 1)
    rows = [f"{path.name}: {total} samples", "inclusive (callfleet code):"]
    rows += [f"  {v / total:6.1%}  {k}" for k, v in incl.most_common(top)]
    rows += ["self (all code):"] + [f"  {v / total:6.1%}  {k}" for k, v in own.most_common(12)]
    rows += ["innermost callfleet frame of samples inside the DB driver:"]
    rows += [f"  {v / total:6.1%}  {k}" for k, v in db_callers.most_common(12)]
    return "\n".join(rows)


# ============================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    ap.add_argument("--contacts", type=int, default=6000,
                    help="contacts per throughput run (default 6,000)")
    ap.add_argument("--runs", type=int, default=3, help="throughput runs per config")
    ap.add_argument("--workers", default="1,2,4", help="PostgreSQL worker counts")
    ap.add_argument("--phases", default="throughput,statements,latency,concurrency",
                    help="subset of throughput,statements,latency,concurrency")
    ap.add_argument("--latency-seconds", type=float, default=15.0,
                    help="length of the window over which due times are spread")
    ap.add_argument("--latency-drain", type=float, default=30.0,
                    help="stop a latency run this long after the last due time; contacts "
                         "not dialed by then count as never dialed")
    ap.add_argument("--latency-rates", default="",
                    help="comma-separated offered rates for the latency phase (default: the "
                         "target, plus --light-fraction of the measured throughput)")
    ap.add_argument("--light-fraction", type=float, default=0.7,
                    help="also measure latency at this fraction of the measured throughput")
    ap.add_argument("--concurrency-backends", default="postgres",
                    help="backends for the concurrency phase (postgres,sqlite)")
    ap.add_argument("--concurrency-contacts", type=int, default=12000)
    ap.add_argument("--concurrency-limit", type=int, default=10000)
    ap.add_argument("--talk-seconds", type=float, default=300.0,
                    help="how long the assistant's first message takes to say")
    ap.add_argument("--concurrency-leases", default="default,600",
                    help="comma-separated CALLFLEET_LEASE_SECONDS values, one concurrency run "
                         "each; 'default' = the product default (the verdict uses the first)")
    ap.add_argument("--plateau-seconds", type=float, default=30.0,
                    help="stop the concurrency run after the limit was held this long")
    ap.add_argument("--concurrency-max-seconds", type=float, default=600.0)
    ap.add_argument("--max-seconds", type=float, default=900.0,
                    help="upper bound on any single run")
    ap.add_argument("--env", action="append", default=[], metavar="CALLFLEET_X=V",
                    help="extra setting for the dialers (repeatable)")
    ap.add_argument("--max-load", type=float, default=2.5,
                    help="before each run wait for the 1-min load average to drop below this "
                         "(0 = do not wait); the load is recorded either way")
    ap.add_argument("--max-wait", type=float, default=1500.0,
                    help="longest wait for a quiet machine before each run (s)")
    ap.add_argument("--max-other-cores", type=float, default=0.6,
                    help="a throughput run during which other processes kept more than this "
                         "many cores busy is repeated (see --retries) and flagged")
    ap.add_argument("--retries", type=int, default=1,
                    help="repeats of a disturbed throughput run (the last one is kept)")
    ap.add_argument("--pg-url", default=os.environ.get(
        "BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="admin DSN (databases callfleet_bench_dialer_* are created/dropped)")
    ap.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                    help="record py-spy raw profiles of every dialer process into DIR")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (one backend); default bench/results/dialer-<backend>"
                         ".json")
    ap.add_argument("--keep", action="store_true", help="keep databases and work dir")
    ap.add_argument("--table", action="store_true",
                    help="print the markdown table of bench/results/dialer-*.json and exit")
    ap.add_argument("--summarize-profile", type=Path, default=None, metavar="FILE")
    ap.add_argument("--loops", choices=("all", "dialer"), default="all",
                    help="what each dialer process runs: all = the loops of `callfleet "
                         "worker` (dialer, webhook sender, conversation/analysis), as in "
                         "production; dialer = the dialer loop alone (diagnosis)")
    ap.add_argument("--cold-start", action="store_true",
                    help="throughput: start the dialers with the contacts already due, so the "
                         "workers' start-up (imports, migrations) is part of the run; by "
                         "default the contacts become due once every dialer is up and idle")
    ap.add_argument("--run-dialer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    bad = args.phases - {"throughput", "statements", "latency", "concurrency"}
    if bad:
        ap.error(f"unknown phases {sorted(bad)}")
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    args.latency_rates = [float(x) for x in args.latency_rates.split(",") if x.strip()]
    args.concurrency_backends = {b.strip() for b in args.concurrency_backends.split(",")}
    args.concurrency_leases = [None if x.strip() == "default" else float(x)
                               for x in args.concurrency_leases.split(",") if x.strip()]
    env: dict[str, str] = {}
    for item in args.env:
        k, _, v = item.partition("=")
        if not k.startswith("CALLFLEET_"):
            ap.error(f"--env {item}: expected CALLFLEET_NAME=value")
        env[k] = v
    args.env = env
    if "127.0.0.1" not in args.pg_url and "localhost" not in args.pg_url:
        ap.error("--pg-url must point at 127.0.0.1")
    return args


async def amain(args: argparse.Namespace) -> int:
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    workdir = Path(tempfile.mkdtemp(prefix="callfleet-dialer-bench-"))
    ctx = Ctx(args, workdir, args.pg_url)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        for backend in backends:
            data = await bench_backend(ctx, backend)
            out = args.out if (args.out and len(backends) == 1) else (
                RESULTS_DIR / f"dialer-{backend}.json")
            out.write_text(json.dumps(data, indent=1, default=str) + "\n")
            log(f"wrote {out}")
            print(json.dumps({"backend": backend, "summary": data["summary"],
                              "verdicts": data["verdicts"]}, indent=1, default=str))
    finally:
        _kill_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work dir kept: {workdir}")
    return 0


def run_dialer_only() -> int:
    """A worker process that runs only the dialer loop (``--loops dialer``)."""
    from callfleet.app import build_dialer
    from callfleet.config import get_settings

    settings = get_settings()

    async def run() -> None:
        db = open_database(settings.resolved_database_url(), pool_size=5)
        await migrate(db)
        dialer = await build_dialer(settings, db)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await dialer.run(stop)
        finally:
            await db.dispose()

    run_async(run())
    return 0


def main() -> int:
    args = parse_args()
    if args.run_dialer:
        return run_dialer_only()
    if args.table:
        print(table(sorted(RESULTS_DIR.glob("dialer-*.json"))))
        return 0
    if args.summarize_profile:
        print(summarize_profile(args.summarize_profile))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The event loop `callfleet serve` (uvicorn) and `callfleet worker` use: uvloop.
    return run_async(amain(args))


if __name__ == "__main__":
    sys.exit(main())
