"""Voice pipeline overhead, barge-in, goodbye truncation and capacity, measured at the carrier.

    flock /work/.bench.lock .venv/bin/python bench/voice.py [--per-process 1,4,8,16]
        [--node 51 --processes 3] [--seconds-per-call 18] [--profile]

Each configuration starts P voice processes (``voice_app`` with fixed-latency fakes:
end-of-speech 0.20 s (Silero VAD stop), speech-to-text 0.15 s, LLM first token 0.30 s (the
deterministic brain after a fixed delay), text-to-speech first audio 0.10 s) and, in other
processes, the carrier side (``CarrierMediaClient``, Twilio framing, real-time 20 ms µ-law,
espeak-ng callee speech). Every call: greeting, the callee answers, the assistant asks a
question, the callee talks over it (barge-in), the assistant answers, the callee says
goodbye, the assistant closes and hangs up.

Per turn, **overhead** = (first non-silent outbound frame at the carrier − end of the
callee's speech) − 0.75 s (the fakes' latencies). Also: barge-in start → ``clear`` at the
carrier, speech still queued at the carrier when callfleet hung up (a truncated goodbye),
frame lateness against the playout clock, CPU ms of the voice processes per call-minute,
memory per call (RSS growth over the idle process), event-loop lag p95, and pipecat's own
per-turn numbers (server side). JSON goes to bench/results/voice.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

FAKES = {"end_of_speech": 0.20, "stt": 0.15, "llm_first_token": 0.30, "tts_first_audio": 0.10}
BUDGET = sum(FAKES.values())
# The carrier side is Python too: at 25 calls a process it fell behind its own 20 ms clock
# (the voice processes then idled while "latency" grew), so it gets a process per 8 calls.
CALLS_PER_CARRIER = 8
KEY = "JmBPt0PnUuMmy1Wv2ngtFpSs1IczwzGw0M8Qy2h6zIY="  # a fixed Fernet key: both sides
LINES = ["Yes I have a minute", "Sorry what is this about exactly", "Okay goodbye"]  # no pauses inside a line: one speech segment each


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ---------------------------------------------------------------- the voice process


def serve(port: int, capacity: int) -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    from callfleet.conversation.lines import Lines, Question
    from callfleet.secrets import SecretBox
    from callfleet.voice import routes as voice_routes
    from callfleet.voice.routes import voice_app
    from callfleet.voice.scripted import ScriptedPlanner
    from callfleet.voice.session import CallPlan
    from callfleet.voice.settings import Speech, VoiceSettings

    def plan(call_id: str, start: Any) -> CallPlan:
        settings = VoiceSettings(
            stt=Speech("fake", latency=FAKES["stt"]),
            tts=Speech("fake", voice="tone", latency=FAKES["tts_first_audio"]),
            end_of_turn_seconds=FAKES["end_of_speech"], brain_latency=FAKES["llm_first_token"],
            silence_timeout_seconds=20)
        return CallPlan(call_id, settings, LINES)

    planner = ScriptedPlanner(plan)
    LINES = Lines(
        first_message="Hi, this is Alex from Acme Solar. Do you have a minute?",
        questions=[Question("email", "Great. What is the best email address to send you "
                            "the details of our offer?"),
                   Question("pitch", "We help homeowners cut their power bill with solar "
                            "panels.")],
        closing="Thanks for your time. Goodbye!")
    app = voice_app(planner, capacity=capacity, box=SecretBox([KEY.encode()]))

    @app.get("/bench/records")
    async def records() -> dict[str, Any]:
        return {"records": planner.records}

    asyncio.run(voice_routes.serve(app, host="127.0.0.1", port=port, log_level="error"))


# ---------------------------------------------------------------- the carrier process


def carrier(urls: list[str], stagger: float, out: str) -> None:
    from callfleet.voice import espeak
    from callfleet.voice.mediaclient import BargeIn, CarrierMediaClient, Say, run_calls

    def script() -> list[Any]:
        return [Say(LINES[0], espeak.speak_ulaw(LINES[0])),
                BargeIn(LINES[1], espeak.speak_ulaw(LINES[1]), after_ms=800),
                Say(LINES[2], espeak.speak_ulaw(LINES[2]))]

    async def main() -> list[dict[str, Any]]:
        clients = [CarrierMediaClient(u, script(), max_seconds=60,
                                      custom_parameters={"oracle": json.dumps(LINES)})
                   for u in urls]
        reports = await run_calls(clients, stagger)
        return [{"turns": [t.latency for t in r.turns],
                 "barge": [(c - s) if c else None for s, c in r.barge_ins],
                 "queued_speech_ms": r.queued_speech_ms_at_close,
                 "closed_by": r.closed_by, "error": r.error,
                 "lateness_ms": r.lateness_ms,
                 "seconds": r.ended_at - r.connected_at} for r in reports]

    Path(out).write_text(json.dumps(asyncio.run(main())))


# ---------------------------------------------------------------- one configuration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("voice process died")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/voice", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("voice process not ready")


def run_config(calls: int, processes: int, carriers: int, stagger: float,
               profile: bool) -> dict[str, Any]:
    import httpx
    import psutil

    from callfleet.secrets import SecretBox
    from callfleet.voice.tokens import stream_path

    box = SecretBox([KEY.encode()])

    per = -(-calls // processes)
    ports = [free_port() for _ in range(processes)]
    servers = [subprocess.Popen(
        [sys.executable, __file__, "--serve", str(p), "--capacity", str(per + 1)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for p, proc in zip(ports, servers, strict=True):
            wait_ready(p, proc)
        time.sleep(1.0)
        ps = [psutil.Process(s.pid) for s in servers]
        rss0 = [p.memory_info().rss for p in ps]
        cpu0 = [sum(p.cpu_times()[:2]) for p in ps]
        urls = [f"ws://127.0.0.1:{ports[i % processes]}"
                + stream_path("twilio", f"call_{i}", box) for i in range(calls)]
        outs = [f"/tmp/voice-bench-{os.getpid()}-{j}.json" for j in range(carriers)]
        load = os.getloadavg()[0]
        began = time.monotonic()
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        clients = [subprocess.Popen(
            [sys.executable, __file__, "--carrier", out, "--stagger", str(stagger * carriers),
             *urls[j::carriers]]) for j, out in enumerate(outs)]
        spy = None
        if profile:
            spy = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "-d", "12", "-r", "50", "-f", "raw", "-o",
                 str(ROOT / "bench/results/voice-profile.txt"), "-p", str(servers[0].pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = list(rss0)
        lag: list[float] = []
        while any(c.poll() is None for c in clients):
            time.sleep(0.5)
            for i, p in enumerate(ps):
                peak[i] = max(peak[i], p.memory_info().rss)
            for port in ports:
                try:
                    lag.append(httpx.get(f"http://127.0.0.1:{port}/health/voice",
                                         timeout=2).json()["event_loop_lag_p95"])
                except httpx.HTTPError:
                    pass
        wall = time.monotonic() - began
        cpu = sum(sum(p.cpu_times()[:2]) for p in ps) - sum(cpu0)
        # The carrier side (load generator) shares the cores: its CPU, from the reaped
        # carrier processes (the voice processes are still running, so not counted here).
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        carrier_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        if spy is not None:
            spy.wait(timeout=60)
        records: list[dict[str, Any]] = []
        for port in ports:
            records.extend(httpx.get(f"http://127.0.0.1:{port}/bench/records",
                                     timeout=10).json()["records"].values())
        results: list[dict[str, Any]] = []
        for out in outs:
            results.extend(json.loads(Path(out).read_text()))
            Path(out).unlink()
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            s.wait(timeout=30)
    turns = [t for r in results for t in r["turns"] if t is not None]
    overhead = [t - BUDGET for t in turns]
    barge = [b for r in results for b in r["barge"] if b is not None]
    late = [x for r in results for x in r["lateness_ms"]]
    call_minutes = sum(r["seconds"] for r in results) / 60
    server_rows = [row for rec in records for row in rec.get("latency", [])]

    def med(key: str) -> float | None:
        vals = [row[key] for row in server_rows if key in row]
        return round(statistics.median(vals), 1) if vals else None

    return {
        "calls": calls, "processes": processes, "load_1m_before": round(load, 2),
        "wall_seconds": round(wall, 1), "turns": len(turns),
        "failed_calls": sum(1 for r in results if r["closed_by"] != "callfleet"),
        "overhead_p50": pct(overhead, 50), "overhead_p95": pct(overhead, 95),
        "turn_p50": pct(turns, 50), "turn_p95": pct(turns, 95),
        "barge_in_clear_p50": pct(barge, 50), "barge_in_clear_p95": pct(barge, 95),
        "barge_ins": len(barge),
        "goodbye_truncated_ms_max": max((r["queued_speech_ms"] or 0) for r in results)
        if results else None,
        "frame_late_ms_p99": pct(late, 99), "frame_late_ms_max": max(late) if late else None,
        "cpu_ms_per_call_minute": round(cpu * 1000 / call_minutes, 1) if call_minutes else None,
        "cpu_share_of_one_core": round(cpu / wall, 2),
        "carrier_side_cpu_share_of_one_core": round(carrier_cpu / wall, 2),
        "carrier_side_cpu_ms_per_call_minute": round(carrier_cpu * 1000 / call_minutes, 1)
        if call_minutes else None,
        "memory_mb_per_call": round(sum(pk - r0 for pk, r0 in zip(peak, rss0, strict=True))
                                    / calls / 2**20, 2),
        "idle_process_mb": round(statistics.mean(rss0) / 2**20, 1),
        "loop_lag_p95_max": max(lag) if lag else None,
        "pipecat_server_side_ms": {
            "callee_stopped_to_audio_p50": med("callee_stopped_to_audio_ms"),
            "stt_p50": med("stt_ms"), "llm_first_token_p50": med("llm_first_token_ms"),
            "tts_first_audio_p50": med("tts_first_audio_ms")},
    }


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", type=int)
    ap.add_argument("--capacity", type=int, default=32)
    ap.add_argument("--carrier")
    ap.add_argument("--stagger", type=float, default=0.25)
    ap.add_argument("urls", nargs="*")
    ap.add_argument("--per-process", default="1,4,8,16")
    ap.add_argument("--node", type=int, default=0)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench/results/voice.json"))
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.capacity)
        return
    if args.carrier:
        carrier(args.urls, args.stagger, args.carrier)
        return
    rows: list[dict[str, Any]] = []
    for n in [int(x) for x in args.per_process.split(",") if x]:
        rows.append(run_config(n, 1, -(-n // CALLS_PER_CARRIER), 0.25,
                               args.profile and n >= 16))
        print(json.dumps(rows[-1]), flush=True)
    if args.node:
        rows.append(run_config(args.node, args.processes, -(-args.node // CALLS_PER_CARRIER),
                               0.1, False))
        print(json.dumps(rows[-1]), flush=True)
    cols = ["calls", "processes", "load_1m_before", "overhead_p50", "overhead_p95",
            "barge_in_clear_p95", "goodbye_truncated_ms_max", "frame_late_ms_p99",
            "cpu_ms_per_call_minute", "memory_mb_per_call", "loop_lag_p95_max",
            "failed_calls"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
    Path(args.out).write_text(json.dumps({"fakes": FAKES, "budget": BUDGET,
                                          "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                              time.gmtime()),
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
