#!/usr/bin/env python
"""CRM benchmark: contact create over HTTP (vs. a minimal FastAPI baseline), list/search on a
large team, and a large CSV import (vs. a raw bulk load), on SQLite and/or PostgreSQL.

    .venv/bin/python bench/crm.py --backend all                 # full size: 1,000,000 rows
    .venv/bin/python bench/crm.py --backend sqlite --rows 20000 # smoke run (~1 minute)
    .venv/bin/python bench/crm.py --table                       # markdown from results/*.json

Everything runs against 127.0.0.1 only: one ``callfleet serve`` process per backend (plus a
short-lived baseline uvicorn process), PostgreSQL at ``--pg-url``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import csv
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import psutil

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
FULL_ROWS = 1_000_000
PG_BENCH_DB = "callfleet_bench"

# Targets (README). Import time targets are for 1M rows and scale linearly with --rows.
TARGET_CREATE_RATIO = 0.7
TARGET_SEARCH_P95_MS = {"sqlite": 300.0, "postgres": 100.0}
TARGET_IMPORT_S_PER_1M = {"sqlite": 120.0, "postgres": 60.0}
TARGET_IMPORT_RSS_MB = 500.0

CONTACT_COLUMNS = (
    "id", "team_id", "company_id", "first_name", "last_name", "email", "phone",
    "phone_secondary", "job_title", "lead_status", "source", "timezone",
    "preferred_contact_method", "do_not_call", "notes", "custom_fields", "tags", "email_lower",
    "search_text", "created_at", "updated_at",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ============================================================== synthetic people

# Common US first/last names, most frequent first; weights fall off like Zipf (1/(rank+10)).
FIRST_NAMES = ["James", "Mary", "Michael", "Patricia", "Robert", "Jennifer", "John", "Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Christopher", "Karen", "Charles", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Margaret", "Donald", "Ashley", "Steven", "Kimberly", "Andrew", "Emily", "Paul", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie", "George", "Rebecca", "Jason", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Dorothy", "Jacob", "Amy", "Nicholas", "Kathleen", "Gary", "Angela", "Eric", "Shirley", "Jonathan", "Emma", "Stephen", "Brenda", "Larry", "Pamela", "Justin", "Nicole", "Scott", "Anna", "Brandon", "Samantha", "Benjamin", "Katherine", "Samuel", "Christine", "Gregory", "Debra", "Alexander", "Rachel", "Patrick", "Carolyn", "Frank", "Janet", "Raymond", "Maria", "Jack", "Olivia", "Dennis", "Heather", "Jerry", "Helen", "Tyler", "Catherine", "Aaron", "Diane", "Jose", "Julie", "Adam", "Victoria", "Nathan", "Joyce", "Henry", "Lauren", "Zachary", "Kelly", "Douglas", "Christina", "Peter", "Ruth", "Kyle", "Joan", "Noah", "Virginia", "Ethan", "Judith", "Jeremy", "Evelyn", "Christian", "Hannah", "Walter", "Andrea", "Keith", "Megan", "Austin", "Cheryl", "Roger", "Jacqueline", "Terry", "Madison", "Sean", "Teresa", "Gerald", "Abigail", "Carl", "Sophia", "Dylan", "Martha", "Harold", "Sara", "Jordan", "Gloria", "Jesse", "Janice", "Bryan", "Kathryn", "Lawrence", "Ann", "Arthur", "Isabella", "Gabriel", "Judy", "Bruce", "Charlotte", "Logan", "Julia", "Billy", "Grace", "Joe", "Amber", "Alan", "Alice", "Juan", "Jean", "Elijah", "Denise", "Willie", "Frances", "Albert", "Danielle", "Wayne", "Marilyn", "Randy", "Natalie", "Mason", "Beverly", "Vincent", "Diana", "Liam", "Brittany", "Roy", "Theresa", "Bobby", "Kayla", "Caleb", "Alexis", "Bradley", "Doris", "Russell", "Lori", "Lucas", "Tiffany", "Wei", "Priya", "Mohammed", "Sofia", "Mateo", "Aisha", "Hiroshi", "Fatima", "Diego", "Mei", "Arjun", "Leila", "Omar", "Yuki", "Carlos", "Ananya", "Dmitri", "Ingrid"]
RARE_FIRST_NAMES = ["Xiomara", "Thaddeus", "Zebulon", "Ottoline", "Peregrine"]
RARE_FIRST_P = 0.0005  # one of the rare names on ~0.05% of rows (Xiomara: ~0.01%)
LAST_NAMES = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley", "Andrews", "Alvarado", "Ray", "Delgado", "Berry", "Perkins", "Hoffman", "Johnston", "Matthews", "Pena", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval", "Andersen", "Sanderson", "Wong", "Yamamoto", "Kowalski", "Okafor", "Novak", "Schneider", "Lindqvist", "Haddad"]
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
                 "aol.com", "acme.com", "globex.com", "initech.com", "umbrella-corp.com",
                 "hooli.com", "piedpiper.com", "stark.io", "wayne-enterprises.com")
EMAIL_DOMAIN_W = (30, 12, 10, 6, 6, 2, 5, 5, 5, 4, 4, 4, 4, 3)
LEAD_STATUSES = ("new", "contacted", "qualified", "unqualified", "converted", "customer",
                 "churned", "do_not_contact")
LEAD_STATUS_W = (40, 25, 12, 8, 5, 5, 3, 2)
JOB_TITLES = ("CEO", "CTO", "CFO", "VP of Sales", "Head of Marketing", "Sales Manager",
              "Account Executive", "Office Manager", "Operations Director", "Founder",
              "Software Engineer", "Product Manager", "Procurement Lead", "IT Manager",
              "Customer Success Manager", "Owner", "Practice Manager", "Consultant")
SOURCES = ("website", "referral", "trade show", "cold list", "webinar", "partner", "linkedin")
TIMEZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
             "America/Phoenix")
TAGS = ("vip", "webinar-2025", "trial", "enterprise", "smb", "newsletter", "partner")
# Real US area codes; exchanges 200-999 except N11 and 555 are valid for libphonenumber.
AREA_CODES = (212, 646, 718, 917, 415, 628, 510, 312, 773, 617, 202, 305, 512, 206, 303, 404,
              713, 214, 602, 702)


def _cum(weights: Any) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


FIRST_CW = _cum(1.0 / (r + 10) for r in range(len(FIRST_NAMES)))
LAST_CW = _cum(1.0 / (r + 10) for r in range(len(LAST_NAMES)))
DOMAIN_CW = _cum(EMAIL_DOMAIN_W)
STATUS_CW = _cum(LEAD_STATUS_W)


class Person(NamedTuple):
    first: str
    last: str
    email: str | None
    phone: str | None  # E.164
    job_title: str
    lead_status: str
    source: str
    timezone: str
    do_not_call: bool
    tags: list[str]
    budget: str | None


class PhoneGen:
    """Unique, valid US numbers in E.164."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.used: set[str] = set()

    def next(self) -> str:
        rnd = self.rnd
        for _ in range(10_000):  # the space is ~110M numbers; collisions are rare
            exchange = rnd.randint(200, 999)
            if exchange % 100 == 11 or exchange == 555:
                continue
            number = f"+1{rnd.choice(AREA_CODES)}{exchange}{rnd.randint(0, 9999):04d}"
            if number not in self.used:
                self.used.add(number)
                return number
        raise RuntimeError("phone number space exhausted")


def gen_people(seed: int, n: int) -> Iterator[Person]:
    """Deterministic for a seed: the import CSV and its raw bulk load see the same people."""
    rnd = random.Random(seed)
    phones = PhoneGen(rnd)
    choices, rand = rnd.choices, rnd.random
    for i in range(n):
        if rand() < RARE_FIRST_P:
            first = rnd.choice(RARE_FIRST_NAMES)
        else:
            first = choices(FIRST_NAMES, cum_weights=FIRST_CW)[0]
        last = choices(LAST_NAMES, cum_weights=LAST_CW)[0]
        domain = choices(EMAIL_DOMAINS, cum_weights=DOMAIN_CW)[0]
        r = rand()
        if r < 0.05:
            email = None
        elif r < 0.65:
            email = f"{first}.{last}{i}@{domain}".lower()
        elif r < 0.85:
            email = f"{first[0]}{last}{i}@{domain}".lower()
        else:
            email = f"{first}_{last}.{i}@{domain}".lower()
        phone = None if rand() < 0.10 else phones.next()
        status = choices(LEAD_STATUSES, cum_weights=STATUS_CW)[0]
        ntags = rnd.randint(0, 2)
        tags = rnd.sample(TAGS, ntags) if ntags else []
        budget = None if rand() < 0.4 else f"${rnd.randint(1, 400) * 250:,}"
        yield Person(first, last, email, phone, rnd.choice(JOB_TITLES), status,
                     rnd.choice(SOURCES), rnd.choice(TIMEZONES), rand() < 0.03, tags, budget)


def human_phone(e164: str, i: int) -> str:
    a, b, c = e164[2:5], e164[5:8], e164[8:]
    return (f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", f"{a}.{b}.{c}")[i % 4]


def contact_record(
    p: Person, *, team_id: str, company_id: str, now: datetime, sqlite: bool, import_shape: bool
) -> tuple[Any, ...]:
    """One ``contacts`` row in CONTACT_COLUMNS order, derived columns computed by callfleet.

    ``import_shape``: only the columns a CSV import with the benchmark header fills.
    """
    from callfleet import ids
    from callfleet.crm.fields import search_text

    if import_shape:
        custom = {"budget": p.budget} if p.budget else {}
        tags: list[str] = []
        source = tz = None
        dnc = False
    else:
        custom = {"budget": p.budget} if p.budget else {}
        tags, source, tz, dnc = p.tags, p.source, p.timezone, p.do_not_call
    ts: Any = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
    return (
        ids.new_id("cont"), team_id, company_id, p.first, p.last, p.email, p.phone, None,
        p.job_title, p.lead_status, source, tz, None, int(dnc) if sqlite else dnc, None,
        json.dumps(custom), json.dumps(tags), p.email.lower() if p.email else None,
        search_text(p.first, p.last, p.email, p.phone, None), ts, ts,
    )


# ============================================================== processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_LIVE: list[subprocess.Popen[bytes]] = []


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc in _LIVE:
        _LIVE.remove(proc)


@atexit.register
def _kill_all() -> None:
    for proc in _LIVE:
        _kill_group(proc, grace=3.0)


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


class Server:
    """A server subprocess in its own process group (killed as a group on stop)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path,
                 port: int) -> None:
        self.name, self.argv, self.env, self.cwd, self.port = name, argv, env, cwd, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = cwd / f"{name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 90.0) -> None:
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        _LIVE.append(self.proc)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start; see {self.log_path}:\n"
                                       + self.log_path.read_text()[-3000:])
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not healthy after {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)


class Profiler:
    """Optional ``py-spy record`` of a server for one phase (``--profile DIR``)."""

    def __init__(self, out_dir: Path | None, pid: int, name: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy")
        if out_dir is None or exe is None:
            if out_dir is not None:
                log("py-spy not found; no profile")
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out = out_dir / f"{name}.txt"
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
             "--nonblocking", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        _LIVE.append(self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc, grace=2.0)
        log(f"profile written to {self.out}")


def _rss_parts(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident bytes of a process (Linux /proc; else (rss, 0)).
    File-backed pages are mostly SQLite's mmap of the database file (shared page cache)."""
    try:
        anon = file_ = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith(("RssFile:", "RssShmem:")):
                    file_ += int(line.split()[1]) * 1024
        return anon, file_
    except (OSError, ValueError, IndexError):
        return psutil.Process(pid).memory_info().rss, 0


def vm_hwm_mb(pid: int) -> float | None:
    """The process's lifetime peak resident set (VmHWM), MB."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


class RssPoller(threading.Thread):
    """Peak RSS of a process and its children, sampled every ``interval`` seconds; also the
    peak of its anonymous part (heap) and of its file-backed part (mmap)."""

    def __init__(self, pid: int, interval: float = 0.1, max_seconds: float = 7200.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.max_seconds = pid, interval, max_seconds
        self.peak = self.peak_anon = self.peak_file = 0
        self.samples = 0
        self._stop_evt = threading.Event()

    def run(self) -> None:
        root = psutil.Process(self.pid)
        deadline = time.monotonic() + self.max_seconds
        while not self._stop_evt.is_set() and time.monotonic() < deadline:
            try:
                procs = [root, *root.children(recursive=True)]
                rss = anon = file_ = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += p.memory_info().rss
                        a, f = _rss_parts(p.pid)
                        anon += a
                        file_ += f
                self.peak = max(self.peak, rss)
                self.peak_anon = max(self.peak_anon, anon)
                self.peak_file = max(self.peak_file, file_)
                self.samples += 1
            except psutil.Error:
                pass
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(5)


def _cpu_s(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def _machine_busy() -> tuple[float, float]:
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, getattr(t, "steal", 0.0)


@dataclass
class CpuSnap:
    wall: float
    client: float
    server: float
    db: float
    busy: float
    steal: float


class CpuMeter:
    """Where the machine's CPU went over a window: the load client (this process alone), the
    server (with its children), the database (PostgreSQL processes serving ``db_name`` plus
    its background processes; SQLite runs inside the server) and everything else ("other":
    the residual, e.g. unrelated jobs sharing the machine)."""

    def __init__(self, server_pid: int, db_name: str | None) -> None:
        self.server = psutil.Process(server_pid)
        self.me = psutil.Process()
        self.db_name = db_name

    def _db_procs(self) -> list[psutil.Process]:
        if not self.db_name:
            return []
        out = []
        for p in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(p.info.get("cmdline") or [])
            if (p.info.get("name") or "").startswith("postgres") and (
                f" {self.db_name} " in cmd or cmd.endswith(self.db_name)
                or any(w in cmd for w in ("checkpointer", "background writer", "walwriter"))
            ):
                out.append(p)
        return out

    def snap(self) -> CpuSnap:
        server = _cpu_s(self.server)
        with contextlib.suppress(psutil.Error):
            server += sum(_cpu_s(c) for c in self.server.children(recursive=True))
        db = sum(_cpu_s(p) for p in self._db_procs())
        busy, steal = _machine_busy()
        return CpuSnap(time.perf_counter(), _cpu_s(self.me), server, db, busy, steal)

    @staticmethod
    def delta(a: CpuSnap, b: CpuSnap) -> dict[str, float]:
        """Percent of ONE core for each consumer (the machine has os.cpu_count() of them)."""
        wall = b.wall - a.wall
        client, server = b.client - a.client, b.server - a.server
        db = max(0.0, b.db - a.db)  # backends that ended in the window are missed (→ other)
        busy = b.busy - a.busy
        other = max(0.0, busy - client - server - db)

        def pc(x: float) -> float:
            return round(100 * x / wall, 1)

        return {
            "cpu_pct_client": pc(client), "cpu_pct_server": pc(server), "cpu_pct_db": pc(db),
            "cpu_pct_other": pc(other), "cpu_pct_machine": pc(busy),
            "cpu_pct_steal": pc(b.steal - a.steal), "cores": os.cpu_count() or 1,
        }


async def wait_idle(max_wait: float, threshold_pct: float = 15.0) -> dict[str, float]:
    """Wait (at most ``max_wait`` s) until the machine has been below ``threshold_pct`` busy
    (of all cores) for 3 s in a row; returns the load seen just before starting."""
    ncpu = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    quiet = 0
    busy_pct = 0.0
    waited = time.monotonic()
    for _ in range(int(max_wait) + 4):
        b0, _ = _machine_busy()
        await asyncio.sleep(1.0)
        b1, _ = _machine_busy()
        busy_pct = 100 * (b1 - b0) / ncpu
        quiet = quiet + 1 if busy_pct < threshold_pct else 0
        if quiet >= 3 or time.monotonic() >= deadline:
            break
    waited = time.monotonic() - waited
    if busy_pct >= threshold_pct:
        log(f"  machine still {busy_pct:.0f}% busy (other jobs); measuring anyway")
    elif waited > 5:
        log(f"  waited {waited:.0f}s for the machine to go idle")
    return {"busy_pct_before": round(busy_pct, 1), "waited_s": round(waited, 1),
            "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def callfleet_argv(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "callfleet"
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "callfleet.cli", *args]


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(callfleet_argv(*args), env=env, cwd=cwd, capture_output=True,
                         timeout=180, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"callfleet {' '.join(args)} failed: {out.stderr.decode()[-2000:]}")
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


# ============================================================== stats


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def lat_summary(lat_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in lat_s]
    return {
        "p50_ms": round(pct(ms, 0.50), 2),
        "p95_ms": round(pct(ms, 0.95), 2),
        "p99_ms": round(pct(ms, 0.99), 2),
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else float("nan"),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
    }


# ============================================================== backends


@dataclass
class Backend:
    kind: str  # sqlite | postgres
    workdir: Path
    url: str  # SQLAlchemy async URL of the callfleet database
    baseline_url: str
    sqlite_path: Path | None = None
    pg_dsn: str | None = None  # plain postgresql:// DSN for asyncpg

    @property
    def sqlite(self) -> bool:
        return self.kind == "sqlite"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
        env.update(
            CALLFLEET_DATABASE_URL=self.url,
            CALLFLEET_DATA_DIR=str(self.workdir),
            CALLFLEET_RATE_LIMIT_PER_MINUTE="0",
            PYTHONUNBUFFERED="1",
        )
        return env


async def pg_admin(admin_dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _dsn_with_db(dsn: str, db: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{db}"


@contextlib.asynccontextmanager
async def open_backend(kind: str, args: argparse.Namespace) -> AsyncIterator[Backend]:
    workdir = Path(tempfile.mkdtemp(prefix=f"callfleet-bench-{kind}-", dir=args.workdir))
    try:
        if kind == "sqlite":
            db = workdir / "callfleet.db"
            yield Backend(kind, workdir, f"sqlite+aiosqlite:///{db}",
                          f"sqlite+aiosqlite:///{workdir / 'baseline.db'}", sqlite_path=db)
            return
        name = PG_BENCH_DB
        await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await pg_admin(args.pg_url, f'CREATE DATABASE "{name}"')
        dsn = _dsn_with_db(args.pg_url, name)
        sa_url = "postgresql+asyncpg://" + dsn.split("://", 1)[1]
        try:
            yield Backend(kind, workdir, sa_url, sa_url, pg_dsn=dsn)
        finally:
            if args.keep:
                log(f"kept database {name}")
            else:
                await pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def new_team(be: Backend, client: httpx.AsyncClient, name: str) -> dict[str, str]:
    team = run_cli(be.env(), be.workdir, "team", "create", "--name", name, "--json")
    headers = {"Authorization": f"Bearer {team['api_key']}"}
    r = await client.post("/api/crm/companies", headers=headers,
                          json={"teamId": team["team_id"], "name": f"{name} Inc",
                                "website": "https://example.com", "industry": "Software"})
    if r.status_code != 201:
        raise RuntimeError(f"company create failed: {r.status_code} {r.text[:500]}")
    return {"team_id": team["team_id"], "key": team["api_key"],
            "company_id": r.json()["company"]["id"], "auth": headers["Authorization"]}


# ============================================================== 1. create over HTTP


async def create_load(
    base_url: str, path: str, team: dict[str, str], *, concurrency: int, warmup: float,
    duration: float, server_pid: int, label: str, db_name: str | None,
) -> dict[str, Any]:
    rnd = random.Random(zlib.crc32(label.encode()))
    phones = PhoneGen(rnd)
    counter = iter(range(10**9))
    lat: list[float] = []
    codes: dict[int, int] = {}
    errors: list[str] = []
    t_start = time.perf_counter()
    m_start = t_start + warmup
    m_end = m_start + duration
    meter = CpuMeter(server_pid, db_name)
    snaps: dict[str, Any] = {}
    headers = {"Authorization": team["auth"], "Content-Type": "application/json"}
    tag = "".join(ch for ch in label.lower() if ch.isalnum())[:20]

    def body() -> bytes:
        i = next(counter)
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        last = LAST_NAMES[(i * 7) % len(LAST_NAMES)]
        return orjson.dumps({
            "teamId": team["team_id"], "companyId": team["company_id"],
            "firstName": first, "lastName": last,
            "email": f"{first}.{last}.{tag}{i}@example.com".lower(),
            "phone": phones.next(), "jobTitle": "Head of Sales", "leadStatus": "qualified",
            "source": "bench", "timezone": "America/New_York", "doNotCall": False,
            "tags": ["bench", "vip"], "customFields": {"budget": 12000, "segment": "smb"},
        })

    async def meter_task() -> None:
        await asyncio.sleep(max(0.0, m_start - time.perf_counter()))
        snaps["a"] = meter.snap()
        await asyncio.sleep(max(0.0, m_end - time.perf_counter()))
        snaps["b"] = meter.snap()

    async def worker() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as c:
            for _ in range(10_000_000):  # bounded; the clock ends the loop
                t0 = time.perf_counter()
                if t0 >= m_end:
                    return
                try:
                    r = await c.post(path, content=body(), headers=headers)
                    status = r.status_code
                    if status != 201 and len(errors) < 5:
                        errors.append(f"{status}: {r.text[:300]}")
                except httpx.HTTPError as exc:
                    status = -1
                    if len(errors) < 5:
                        errors.append(repr(exc))
                t1 = time.perf_counter()
                if m_start <= t1 <= m_end:
                    codes[status] = codes.get(status, 0) + 1
                    if status == 201:
                        lat.append(t1 - t0)

    await asyncio.gather(meter_task(), *(worker() for _ in range(concurrency)))
    ok = codes.get(201, 0)
    out = {
        "requests_ok": ok,
        "requests_failed": sum(v for k, v in codes.items() if k != 201),
        "req_per_s": round(ok / duration, 1),
        **lat_summary(lat),
        **CpuMeter.delta(snaps["a"], snaps["b"]),
    }
    # CPU per request is robust to other jobs sharing the machine, unlike req/s.
    a, b = snaps["a"], snaps["b"]
    done = sum(codes.values()) or 1
    out["server_cpu_ms_per_req"] = round(1000 * (b.server - a.server) / done, 3)
    out["db_cpu_ms_per_req"] = round(1000 * max(0.0, b.db - a.db) / done, 3)
    out["_lat"], out["_done"] = lat, done
    if errors:
        out["error_samples"] = errors
    log(f"  {label}: {out['req_per_s']} req/s  p50 {out['p50_ms']} ms  p95 {out['p95_ms']} ms"
        f"  server CPU {out['server_cpu_ms_per_req']} ms/req (db {out['db_cpu_ms_per_req']})"
        f"  CPU% client {out['cpu_pct_client']} server {out['cpu_pct_server']}"
        f" db {out['cpu_pct_db']} other {out['cpu_pct_other']}")
    return out


def _aggregate(rounds: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    """Pool the rounds of one server: total req/s, latency over all requests, CPU per request
    weighted by requests, CPU shares averaged."""
    lat = [x for r in rounds for x in r.pop("_lat")]
    done = sum(r["_done"] for r in rounds) or 1
    out: dict[str, Any] = {
        "requests_ok": sum(r["requests_ok"] for r in rounds),
        "requests_failed": sum(r["requests_failed"] for r in rounds),
    }
    out["req_per_s"] = round(out["requests_ok"] / (duration * len(rounds)), 1)
    out.update(lat_summary(lat))
    for k in ("server_cpu_ms_per_req", "db_cpu_ms_per_req"):
        out[k] = round(sum(r[k] * r["_done"] for r in rounds) / done, 3)
    for k in rounds[0]:
        if k.startswith("cpu_pct_"):
            out[k] = round(sum(r[k] for r in rounds) / len(rounds), 1)
    errors = [e for r in rounds for e in r.get("error_samples", [])]
    if errors:
        out["error_samples"] = errors[:5]
    out["rounds"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rounds]
    return out


async def bench_create(be: Backend, server: Server, team: dict[str, str],
                       args: argparse.Namespace) -> dict[str, Any]:
    log(f"[{be.kind}] 1. contact create: {args.concurrency} clients, {args.rounds} round(s) of"
        f" callfleet then baseline, each {args.warmup}s warmup + {args.duration}s measured")
    db_name = PG_BENCH_DB if not be.sqlite else None
    port = free_port()
    env = {**be.env(), "BENCH_BASELINE_URL": be.baseline_url}
    base = Server("baseline", [sys.executable, "-m", "uvicorn", "baseline_app:app", "--app-dir",
                               str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(port),
                               "--log-level", "warning", "--no-access-log"],
                  env, be.workdir, port)
    await base.start()
    idle: list[dict[str, Any]] = []
    ours_r: list[dict[str, Any]] = []
    base_r: list[dict[str, Any]] = []
    prof = Profiler(args.profile, server.pid, f"{be.kind}-create")
    try:
        # Alternate the two servers so drifting background load hits both alike.
        for i in range(args.rounds):
            idle.append(await wait_idle(args.wait_idle))
            ours_r.append(await create_load(
                server.base_url, "/api/crm/contacts", team, concurrency=args.concurrency,
                warmup=args.warmup, duration=args.duration, server_pid=server.pid,
                label=f"ours{i}", db_name=db_name))
            idle.append(await wait_idle(args.wait_idle))
            base_r.append(await create_load(
                base.base_url, "/contacts", team, concurrency=args.concurrency,
                warmup=args.warmup, duration=args.duration, server_pid=base.pid,
                label=f"baseline{i}", db_name=db_name))
    finally:
        prof.stop()
        base.stop()
    ratios = [o["req_per_s"] / b["req_per_s"] if b["req_per_s"] else 0.0
              for o, b in zip(ours_r, base_r, strict=True)]
    ours = _aggregate(ours_r, args.duration)
    baseline = _aggregate(base_r, args.duration)
    ratio = ours["req_per_s"] / baseline["req_per_s"] if baseline["req_per_s"] else 0.0
    cpu_ratio = (baseline["server_cpu_ms_per_req"] + baseline["db_cpu_ms_per_req"]) / max(
        1e-9, ours["server_cpu_ms_per_req"] + ours["db_cpu_ms_per_req"])
    log(f"  ratio callfleet/baseline: {ratio:.2f} (per round "
        f"{', '.join(f'{r:.2f}' for r in ratios)}); CPU per request baseline/callfleet "
        f"{cpu_ratio:.2f}")
    return {
        "concurrency": args.concurrency, "warmup_s": args.warmup, "duration_s": args.duration,
        "rounds": args.rounds, "ours": ours, "baseline": baseline, "ratio": round(ratio, 3),
        "ratio_per_round": [round(r, 3) for r in ratios],
        "cpu_efficiency_ratio": round(cpu_ratio, 3),
        "target_ratio": TARGET_CREATE_RATIO, "pass": ratio >= TARGET_CREATE_RATIO,
        "machine_before": idle,
    }


# ============================================================== 2. list / search


def _sqlite_bulk(path: Path, rows: Iterator[tuple[Any, ...]], *, rebuild_fts: bool) -> None:
    """executemany into contacts; with ``rebuild_fts`` the FTS triggers are dropped for the
    load and the index rebuilt once after (same content, much faster)."""
    con = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        con.execute("PRAGMA busy_timeout=60000")
        con.execute("PRAGMA cache_size=-262144")
        triggers = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name='contacts'"
        ).fetchall() if rebuild_fts else []
        con.execute("BEGIN IMMEDIATE")
        for name, _ in triggers:
            con.execute(f'DROP TRIGGER "{name}"')
        sql = (f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(CONTACT_COLUMNS))})")
        chunk: list[tuple[Any, ...]] = []
        for rec in rows:
            chunk.append(rec)
            if len(chunk) >= 50_000:
                con.executemany(sql, chunk)
                chunk = []
        if chunk:
            con.executemany(sql, chunk)
        if rebuild_fts:
            con.execute("INSERT INTO contacts_fts(contacts_fts) VALUES('rebuild')")
            for _, trig_sql in triggers:
                con.execute(trig_sql)
        con.execute("COMMIT")
    finally:
        con.close()


def _sqlite_analyze(path: Path) -> None:
    con = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        con.execute("PRAGMA busy_timeout=60000")
        con.execute("ANALYZE")
    finally:
        con.close()


async def _pg_bulk(dsn: str, rows: Iterator[tuple[Any, ...]]) -> None:
    """COPY into contacts (its trigger fills contact_search) with the secondary indexes of
    both dropped, then recreated from their own definitions (pg_indexes), then VACUUM
    ANALYZE."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        idx = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('contacts', 'contact_search') "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)")
        for r in idx:
            await conn.execute(f'DROP INDEX "{r["indexname"]}"')
        chunk: list[tuple[Any, ...]] = []
        for rec in rows:
            chunk.append(rec)
            if len(chunk) >= 50_000:
                await conn.copy_records_to_table("contacts", records=chunk,
                                                 columns=CONTACT_COLUMNS)
                chunk = []
        if chunk:
            await conn.copy_records_to_table("contacts", records=chunk, columns=CONTACT_COLUMNS)
        for r in idx:
            await conn.execute(r["indexdef"])
        await conn.execute("VACUUM ANALYZE contacts")
        await conn.execute("VACUUM ANALYZE contact_search")
        await conn.execute("VACUUM ANALYZE companies")
    finally:
        await conn.close()


@dataclass
class SearchExpect:
    total: int = 0
    qualified_with_phone: int = 0
    substr: dict[str, int] | None = None
    email_sample: str | None = None


def search_rows(be: Backend, team: dict[str, str], n: int, exp: SearchExpect,
                terms: list[str]) -> Iterator[tuple[Any, ...]]:
    now = datetime.now(UTC)
    exp.substr = dict.fromkeys(terms, 0)
    for i, p in enumerate(gen_people(seed=1, n=n)):
        rec = contact_record(p, team_id=team["team_id"], company_id=team["company_id"],
                             now=now, sqlite=be.sqlite, import_shape=False)
        exp.total += 1
        if p.lead_status == "qualified" and p.phone:
            exp.qualified_with_phone += 1
        st = rec[18]
        for t in terms:
            if t in st:
                exp.substr[t] += 1
        if exp.email_sample is None and i >= n // 3 and p.email:
            exp.email_sample = p.email
        yield rec


async def bench_search(be: Backend, server: Server, client: httpx.AsyncClient,
                       args: argparse.Namespace) -> dict[str, Any]:
    n = args.rows
    log(f"[{be.kind}] 2. list/search: bulk-loading {n:,} contacts into one team")
    team = await new_team(be, client, "Bench Search")
    exp = SearchExpect()
    terms = ["ander", "xiomara", "415867", "outlook.com", "li"]
    t0 = time.perf_counter()
    rows = search_rows(be, team, n, exp, terms)
    if be.sqlite:
        assert be.sqlite_path
        await asyncio.to_thread(_sqlite_bulk, be.sqlite_path, rows, rebuild_fts=True)
        log(f"  loaded in {time.perf_counter() - t0:.1f}s; ANALYZE")
        await asyncio.to_thread(_sqlite_analyze, be.sqlite_path)
    else:
        assert be.pg_dsn
        await _pg_bulk(be.pg_dsn, rows)
    load_s = time.perf_counter() - t0
    log(f"  bulk load + index + analyze: {load_s:.1f}s")
    assert exp.substr is not None and exp.email_sample
    email_q = exp.email_sample

    base = {"teamId": team["team_id"]}
    queries: list[tuple[str, dict[str, Any], int | None, bool]] = [
        # name, params, expected count, targeted
        ("list_first_page", {"limit": 50}, exp.total, True),
        ("search_name_mid ('ander')", {"search": "ander"}, exp.substr["ander"], True),
        ("search_name_rare ('xiomara')", {"search": "xiomara"}, exp.substr["xiomara"], True),
        ("search_phone ('415 867')", {"search": "415 867"}, exp.substr["415867"], True),
        ("search_email (exact address)", {"search": email_q}, 1, True),
        ("filter leadStatus=qualified&hasPhone=true",
         {"leadStatus": "qualified", "hasPhone": "true"}, exp.qualified_with_phone, True),
        (f"offset={n // 10}", {"offset": n // 10, "limit": 50}, exp.total, True),
        (f"offset={n // 2}", {"offset": n // 2, "limit": 50}, exp.total, True),
        ("search_email_domain ('outlook.com', info)", {"search": "outlook.com"},
         exp.substr["outlook.com"], False),
        ("search_2_chars ('li', info)", {"search": "li"}, exp.substr["li"], False),
    ]
    headers = {"Authorization": team["auth"]}
    target = TARGET_SEARCH_P95_MS[be.kind]
    results: dict[str, Any] = {}
    idle = await wait_idle(args.wait_idle)
    prof = Profiler(args.profile, server.pid, f"{be.kind}-search")
    poller = RssPoller(server.pid)
    poller.start()
    try:
        for name, params, expected, targeted in queries:
            lat: list[float] = []
            count = None
            for i in range(args.search_warmup + args.search_reps):
                t = time.perf_counter()
                r = await client.get("/api/crm/contacts", params={**base, **params},
                                     headers=headers)
                dt = time.perf_counter() - t
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: {r.status_code} {r.text[:500]}")
                count = r.json()["count"]
                if i >= args.search_warmup:
                    lat.append(dt)
            s = lat_summary(lat)
            entry: dict[str, Any] = {"params": params, "count": count, **s,
                                     "reps": args.search_reps}
            if expected is not None:
                entry["expected_count"] = expected
                entry["count_ok"] = count == expected
            if targeted:
                entry["target_p95_ms"] = target
                entry["pass"] = s["p95_ms"] <= target
            results[name] = entry
            mark = "" if not targeted else (" PASS" if entry["pass"] else " MISS")
            log(f"  {name:45s} p50 {s['p50_ms']:8.1f} ms  p95 {s['p95_ms']:8.1f} ms"
                f"  count {count}{mark}")
    finally:
        prof.stop()
        poller.stop()
    return {"rows": n, "bulk_load_s": round(load_s, 1), "team_id": team["team_id"],
            "machine_before": idle,
            "peak_server_rss_mb": round(poller.peak / 2**20, 1),
            "peak_server_rss_anon_mb": round(poller.peak_anon / 2**20, 1),
            "server_vmhwm_mb": vm_hwm_mb(server.pid), "queries": results,
            "pass": all(v.get("pass", True) for v in results.values())}


# ============================================================== 3. CSV import

CSV_HEADER = ["First Name", "Last Name", "Email", "Phone", "Job Title", "Lead Status", "Budget"]
IMPORT_SEED = 2


def write_csv(path: Path, n: int) -> int:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for i, p in enumerate(gen_people(IMPORT_SEED, n)):
            status = p.lead_status.replace("_", " ").title() if i % 2 else p.lead_status
            w.writerow([p.first, p.last, p.email or "", human_phone(p.phone, i) if p.phone
                        else "", p.job_title, status, p.budget or ""])
    return path.stat().st_size


async def raw_load(be: Backend, team: dict[str, str], n: int) -> dict[str, Any]:
    """The same rows, already normalised, straight into ``contacts`` of a scratch team with
    every index and trigger in place; only the database calls are timed."""
    now = datetime.now(UTC)
    people = gen_people(IMPORT_SEED, n)
    chunk_n = 50_000
    db_s = 0.0
    cpu_s = 0.0  # SQLite: CPU of this thread inside executemany; PostgreSQL: the server's
    total = 0

    def next_chunk() -> list[tuple[Any, ...]]:
        out = []
        for p in people:
            out.append(contact_record(p, team_id=team["team_id"],
                                      company_id=team["company_id"], now=now,
                                      sqlite=be.sqlite, import_shape=True))
            if len(out) >= chunk_n:
                break
        return out

    if be.sqlite:
        assert be.sqlite_path
        con = sqlite3.connect(be.sqlite_path, isolation_level=None, timeout=60)
        try:
            for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                           "PRAGMA busy_timeout=30000", "PRAGMA foreign_keys=ON",
                           "PRAGMA cache_size=-65536"):
                con.execute(pragma)
            sql = (f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(CONTACT_COLUMNS))})")
            for _ in range(n // chunk_n + 2):
                chunk = next_chunk()
                if not chunk:
                    break
                t, c = time.perf_counter(), time.thread_time()
                con.execute("BEGIN IMMEDIATE")
                con.executemany(sql, chunk)
                con.execute("COMMIT")
                db_s += time.perf_counter() - t
                cpu_s += time.thread_time() - c
                total += len(chunk)
        finally:
            con.close()
    else:
        import asyncpg

        assert be.pg_dsn
        conn = await asyncpg.connect(be.pg_dsn)
        backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
        try:
            for _ in range(n // chunk_n + 2):
                chunk = next_chunk()
                if not chunk:
                    break
                t, c = time.perf_counter(), _cpu_s(backend)
                await conn.copy_records_to_table("contacts", records=chunk,
                                                 columns=CONTACT_COLUMNS)
                db_s += time.perf_counter() - t
                cpu_s += _cpu_s(backend) - c
                total += len(chunk)
        finally:
            await conn.close()
    method = ("sqlite3 executemany, 50k rows per transaction, FTS trigger on" if be.sqlite
              else "asyncpg copy_records_to_table, 50k rows per COPY, all indexes on")
    return {"rows": total, "seconds": round(db_s, 2), "rows_per_s": round(total / db_s),
            "db_cpu_s": round(cpu_s, 2), "method": method}


async def bench_import(be: Backend, server: Server, client: httpx.AsyncClient,
                       args: argparse.Namespace) -> dict[str, Any]:
    n = args.rows
    csv_path = be.workdir / "import.csv"
    log(f"[{be.kind}] 3. import: writing a {n:,}-row CSV")
    size = await asyncio.to_thread(write_csv, csv_path, n)
    raw_team = await new_team(be, client, "Bench Raw")
    log("  raw bulk load of the same rows into a scratch team")
    raw = {"machine_before": await wait_idle(args.wait_idle)}
    raw.update(await raw_load(be, raw_team, n))
    log(f"  raw: {raw['seconds']}s ({raw['rows_per_s']:,} rows/s)")

    team = await new_team(be, client, "Bench Import")
    log(f"  POST /api/crm/contacts/import ({size / 1e6:.1f} MB)")

    async def chunks() -> AsyncIterator[bytes]:
        with open(csv_path, "rb") as f:
            for _ in range(size // (1 << 20) + 2):
                data = f.read(1 << 20)
                if not data:
                    return
                yield data

    server_proc = psutil.Process(server.pid)
    rss_before = server_proc.memory_info().rss
    poller = RssPoller(server.pid)
    poller.start()
    meter = CpuMeter(server.pid, PG_BENCH_DB if not be.sqlite else None)
    idle = await wait_idle(args.wait_idle)
    prof = Profiler(args.profile, server.pid, f"{be.kind}-import")
    a = meter.snap()
    t0 = time.perf_counter()
    try:
        r = await client.post(
            "/api/crm/contacts/import",
            params={"teamId": team["team_id"], "companyId": team["company_id"]},
            headers={"Authorization": team["auth"], "Content-Type": "text/csv",
                     "Content-Length": str(size)},
            content=chunks(), timeout=httpx.Timeout(3600.0),
        )
    finally:
        wall = time.perf_counter() - t0
        b = meter.snap()
        poller.stop()
        prof.stop()
    if r.status_code != 200:
        raise RuntimeError(f"import failed: {r.status_code} {r.text[:1000]}")
    res = r.json()
    check = await client.get("/api/crm/contacts", params={"teamId": team["team_id"],
                                                          "limit": 1},
                             headers={"Authorization": team["auth"]})
    stored = check.json()["count"]
    target_s = TARGET_IMPORT_S_PER_1M[be.kind] * n / FULL_ROWS
    peak_mb = poller.peak / 2**20
    out = {
        "rows": n, "csv_mb": round(size / 1e6, 1), "wall_s": round(wall, 2),
        "rows_per_s": round(n / wall), "imported": res["imported"], "updated": res["updated"],
        "skipped": res["skipped"], "failed": res["failed"],
        "first_errors": res["errors"][:3], "stored_count": stored,
        "server_rss_before_mb": round(rss_before / 2**20, 1),
        "peak_server_rss_mb": round(peak_mb, 1), "rss_samples": poller.samples,
        "peak_server_rss_anon_mb": round(poller.peak_anon / 2**20, 1),
        "peak_server_rss_file_mb": round(poller.peak_file / 2**20, 1),
        "server_vmhwm_mb_after": vm_hwm_mb(server.pid),
        "server_cpu_s": round(b.server - a.server, 1),
        "db_cpu_s": round(max(0.0, b.db - a.db), 1), **CpuMeter.delta(a, b),
        "machine_before": idle,
        "raw": raw, "import_over_raw": round(wall / raw["seconds"], 2),
        "target_wall_s": round(target_s, 1), "target_peak_rss_mb": TARGET_IMPORT_RSS_MB,
        "pass_time": wall <= target_s, "pass_rss": peak_mb <= TARGET_IMPORT_RSS_MB,
    }
    out["pass"] = out["pass_time"] and out["pass_rss"] and res["imported"] == n
    log(f"  import: {wall:.1f}s ({out['rows_per_s']:,} rows/s), imported {res['imported']:,}, "
        f"failed {res['failed']}, peak RSS {peak_mb:.0f} MB (anon "
        f"{out['peak_server_rss_anon_mb']:.0f}, file {out['peak_server_rss_file_mb']:.0f}), "
        f"{out['import_over_raw']}x raw")
    return out


# ============================================================== driver


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True, check=False).stdout.strip()
    import hashlib

    src = hashlib.sha256()
    for f in sorted((ROOT / "src" / "callfleet").rglob("*.py")):
        src.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes())
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "cpu_model": cpu_model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(), "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {p: _version(p) for p in ("fastapi", "starlette", "uvicorn", "sqlalchemy",
                                              "asyncpg", "aiosqlite", "pydantic", "httpx",
                                              "uvloop", "phonenumbers")},
        "callfleet_commit": commit + ("+dirty-src" if dirty else ""),
        "callfleet_src_sha256": src.hexdigest()[:16],
    }


async def run_backend(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": kind, "machine": machine_info(), "config": {
        "rows": args.rows, "concurrency": args.concurrency, "rounds": args.rounds,
        "warmup_s": args.warmup,
        "duration_s": args.duration, "search_reps": args.search_reps,
        "search_warmup": args.search_warmup, "phases": sorted(args.phases),
        "serve_args": args.serve_arg,
    }}
    async with open_backend(kind, args) as be:
        if kind == "postgres":
            import asyncpg

            assert be.pg_dsn
            conn = await asyncpg.connect(be.pg_dsn)
            try:
                result["machine"]["postgres"] = await conn.fetchval("SHOW server_version")
                result["machine"]["pg_settings"] = {
                    k: await conn.fetchval(f"SHOW {k}")
                    for k in ("shared_buffers", "work_mem", "effective_cache_size",
                              "synchronous_commit", "max_connections")}
            finally:
                await conn.close()
        port = free_port()
        server = Server("callfleet", callfleet_argv("serve", "--port", str(port),
                                                    *args.serve_arg), be.env(), be.workdir, port)
        await server.start()
        log(f"[{kind}] callfleet serve pid {server.pid} on :{port}, db {be.url}")
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=120.0) as client:
                if "create" in args.phases:
                    team = await new_team(be, client, "Bench")
                    result["create"] = await bench_create(be, server, team, args)
                    result["create"]["server_vmhwm_mb_after"] = vm_hwm_mb(server.pid)
                if "search" in args.phases:
                    result["search"] = await bench_search(be, server, client, args)
                if "import" in args.phases:
                    result["import"] = await bench_import(be, server, client, args)
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"callfleet server died; see {server.log_path}")
        except BaseException:
            with contextlib.suppress(OSError):
                log("server log tail:\n" + server.log_path.read_text()[-3000:])
            raise
        finally:
            server.stop()
    return result


def default_out(kind: str, rows: int) -> Path:
    suffix = "" if rows == FULL_ROWS else f"-rows{rows}"
    return RESULTS_DIR / f"crm-{kind}{suffix}.json"


# ============================================================== markdown


def _fmt_ms(q: dict[str, Any]) -> str:
    mark = "" if "pass" not in q else (" ✅" if q["pass"] else " ❌")
    return f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f}{mark}"


def render_table(results: list[dict[str, Any]]) -> str:
    by = {r["backend"]: r for r in results}
    kinds = [k for k in ("sqlite", "postgres") if k in by]
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    lines = ["| Benchmark | " + " | ".join(names[k] for k in kinds) + " | Target |",
             "|---|" + "---|" * len(kinds) + "---|"]

    def row(label: str, fn: Any, target: str) -> None:
        cells = []
        for k in kinds:
            try:
                cells.append(fn(by[k]))
            except (KeyError, TypeError):
                cells.append("–")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")

    row("Create: callfleet req/s (p50 / p95 ms)",
        lambda r: f"{r['create']['ours']['req_per_s']:.0f} "
                  f"({r['create']['ours']['p50_ms']:.1f} / {r['create']['ours']['p95_ms']:.1f})",
        "")
    row("Create: baseline req/s (p50 / p95 ms)",
        lambda r: f"{r['create']['baseline']['req_per_s']:.0f} "
                  f"({r['create']['baseline']['p50_ms']:.1f} / "
                  f"{r['create']['baseline']['p95_ms']:.1f})", "")
    row("Create: ratio callfleet / baseline",
        lambda r: f"{r['create']['ratio']:.2f} " + ("✅" if r["create"]["pass"] else "❌"),
        f"≥ {TARGET_CREATE_RATIO}")
    row("Create: server CPU ms/request, callfleet vs baseline (+ PostgreSQL)",
        lambda r: "{:.2f} vs {:.2f}".format(
            r["create"]["ours"]["server_cpu_ms_per_req"] + r["create"]["ours"]["db_cpu_ms_per_req"],
            r["create"]["baseline"]["server_cpu_ms_per_req"]
            + r["create"]["baseline"]["db_cpu_ms_per_req"]), "info")
    qnames: list[str] = []
    for k in kinds:
        for q in by[k].get("search", {}).get("queries", {}):
            if q not in qnames:
                qnames.append(q)
    rows_n = by[kinds[0]]["config"]["rows"] if kinds else FULL_ROWS
    for q in qnames:
        targeted = any("pass" in by[k].get("search", {}).get("queries", {}).get(q, {})
                       for k in kinds)
        row(f"List `{q}` p50 / p95 ms (count)",
            lambda r, q=q: _fmt_ms(r["search"]["queries"][q])
            + f" ({r['search']['queries'][q]['count']:,})",
            "p95 ≤ 300 / ≤ 100 ms" if targeted else "info")
    row(f"Import {rows_n:,}-row CSV: wall s (rows/s)",
        lambda r: f"{r['import']['wall_s']:.1f} ({r['import']['rows_per_s']:,}) "
                  + ("✅" if r["import"]["pass_time"] else "❌"),
        f"≤ {TARGET_IMPORT_S_PER_1M['sqlite'] * rows_n / FULL_ROWS:g} / "
        f"≤ {TARGET_IMPORT_S_PER_1M['postgres'] * rows_n / FULL_ROWS:g} s")
    row("Import: peak server RSS MB (RSS when it started)",
        lambda r: f"{r['import']['peak_server_rss_mb']:.0f} "
                  + ("✅" if r["import"]["pass_rss"] else "❌")
                  + f" ({r['import']['server_rss_before_mb']:.0f})",
        f"≤ {TARGET_IMPORT_RSS_MB:.0f} MB")
    row("Import: server CPU s (+ PostgreSQL CPU s)",
        lambda r: f"{r['import']['server_cpu_s']:.0f}"
                  + (f" (+{r['import']['db_cpu_s']:.0f})" if r["import"].get("db_cpu_s") else ""),
        "info")
    row("Import: imported / failed",
        lambda r: f"{r['import']['imported']:,} / {r['import']['failed']:,}", "all rows")
    row("Raw bulk load of the same rows: s (rows/s)",
        lambda r: f"{r['import']['raw']['seconds']:.1f} ({r['import']['raw']['rows_per_s']:,})",
        "info")
    row("Import time / raw load time",
        lambda r: f"{r['import']['import_over_raw']:.1f}×", "info")
    return "\n".join(lines)


# ============================================================== profiles


def summarize_profile(path: Path, top: int = 25, focus: str = "callfleet/") -> str:
    """Text summary of a ``py-spy record --format raw`` file: samples per thread kind, the
    hottest frames inclusive ("total") and by leaf ("self"), and the callfleet frames."""
    total = 0
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    roots: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, n_s = line.rpartition(" ")
        if not n_s.isdigit():
            continue
        n = int(n_s)
        frames = stack.split(";")
        total += n
        root = "main thread" if frames[0].startswith("<module>") else "worker threads"
        roots[root] = roots.get(root, 0) + n
        for f in dict.fromkeys(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
    if not total:
        return f"{path}: no samples"
    out = [f"{path}: {total} samples (" + ", ".join(
        f"{k} {100 * v / total:.0f}%" for k, v in roots.items()) + ")"]

    def block(title: str, d: dict[str, int], pred: Any = None) -> None:
        out.append(title)
        items = sorted(((v, k) for k, v in d.items() if pred is None or pred(k)), reverse=True)
        for v, k in items[:top]:
            out.append(f"  {100 * v / total:5.1f}%  {k}")

    block("self (leaf frames):", leaf)
    block(f"total, frames in {focus}:", inclusive, lambda k: focus in k)
    return "\n".join(out)


# ============================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    ap.add_argument("--rows", type=int, default=FULL_ROWS,
                    help="contacts in the search team and rows in the import CSV "
                         "(default 1,000,000; e.g. 20000 for a smoke run)")
    ap.add_argument("--phases", default="create,search,import",
                    help="comma-separated subset of create,search,import")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=None, help="create warmup s (default 2)")
    ap.add_argument("--duration", type=float, default=None,
                    help="create measurement s (default 15; scaled down with --rows)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="create: alternating rounds of callfleet then baseline (default 2)")
    ap.add_argument("--search-reps", type=int, default=30)
    ap.add_argument("--search-warmup", type=int, default=3)
    ap.add_argument("--pg-url", default=os.environ.get(
        "BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="admin DSN; the benchmark creates and drops database "
                         f"{PG_BENCH_DB} on that server")
    ap.add_argument("--workdir", default=None, help="parent of the temporary work directory")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (single backend); default bench/results/crm-<backend>"
                         ".json, or crm-<backend>-rows<N>.json when --rows is not 1,000,000")
    ap.add_argument("--profile", type=Path, default=None,
                    help="record py-spy profiles (raw collapsed stacks) of the server per "
                         "phase into this directory")
    ap.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for `callfleet serve` (repeatable), e.g. "
                         "--serve-arg=--no-worker")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                    help="before each measurement wait up to S seconds for the machine to be "
                         "idle (other jobs); the load seen is recorded either way")
    ap.add_argument("--merge", action="store_true",
                    help="update only the phases run in an existing results file")
    ap.add_argument("--keep", action="store_true", help="keep the work dir and PG database")
    ap.add_argument("--summarize-profile", type=Path, default=None, metavar="FILE",
                    help="print a summary of a py-spy raw profile written by --profile, exit")
    ap.add_argument("--table", action="store_true",
                    help="print the markdown table of bench/results/crm-*.json and exit")
    args = ap.parse_args(argv)
    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    bad = args.phases - {"create", "search", "import"}
    if bad:
        ap.error(f"unknown phases: {', '.join(sorted(bad))}")
    scale = min(1.0, args.rows / FULL_ROWS)
    if args.warmup is None:
        args.warmup = 2.0 if scale >= 0.1 else 1.0
    if args.duration is None:
        args.duration = round(max(3.0, 15.0 * scale), 1) if scale < 0.1 else 15.0
    if args.rows < 1000:
        ap.error("--rows must be at least 1000")
    return args


async def amain(args: argparse.Namespace) -> int:
    kinds = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    done = []
    for kind in kinds:
        result = await run_backend(kind, args)
        out = args.out if (args.out and len(kinds) == 1) else default_out(kind, args.rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.merge and out.exists():
            # Replace only the phases of this run; keep the others (with their own dates).
            old = json.loads(out.read_text())
            for phase in ("create", "search", "import"):
                if phase in old and phase not in result:
                    result[phase] = old[phase]
                    result.setdefault("earlier_runs", {})[phase] = old.get(
                        "phase_machine", {}).get(phase, old.get("machine"))
        result.setdefault("phase_machine", {})
        for phase in args.phases:
            result["phase_machine"][phase] = result["machine"]
        out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"[{kind}] results written to {out}")
        done.append(result)
    print(render_table(done))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarize_profile:
        print(summarize_profile(args.summarize_profile))
        return 0
    if args.table:
        files = [default_out(k, FULL_ROWS) for k in ("sqlite", "postgres")]
        results = [json.loads(f.read_text()) for f in files if f.exists()]
        print(render_table(results))
        return 0
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            return uvloop.run(amain(args))
        return asyncio.run(amain(args))
    finally:
        _kill_all()


if __name__ == "__main__":
    sys.exit(main())
