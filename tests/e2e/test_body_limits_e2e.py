"""A real ``callfleet serve`` keeps its memory bounded whatever a client sends: 64 MB chunked
bodies (no Content-Length) to a JSON route, to the update route whose id is "import", to the
JSON contact import and to the do-not-call import all get a 413 in the error envelope, and
the server's peak resident memory grows by a fraction of what was sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from tests.e2e.test_server import Server, free_port, servers  # noqa: F401 - fixture
from tests.test_cli import cli_env, one_json, run_cli

MB = 1 << 20
SENT = 64 * MB


def chunks() -> Iterator[bytes]:
    piece = b'{"padding": "' + b"x" * (MB - 13)
    for _ in range(SENT // MB):
        yield piece


def peak_rss(pid: int) -> int:
    """The process's high-water resident set (VmHWM): the peak, not the moment."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return int(psutil.Process(pid).memory_info().rss)


def test_64_mb_chunked_bodies_are_refused_with_bounded_memory(
        tmp_path: Path, servers: list[Server]) -> None:  # noqa: F811
    env = cli_env(tmp_path / "data")
    team = one_json(run_cli(tmp_path, env, "team", "create", "--name", "Acme", "--json").stdout)
    server = Server(env, tmp_path, "127.0.0.1", free_port())
    servers.append(server)
    server.start().wait_ready()
    assert server.proc is not None
    auth = {"Authorization": f"Bearer {team['api_key']}"}
    routes = [
        ("POST", "/api/crm/companies", "application/json"),
        ("PATCH", "/api/crm/contacts/import", "application/json"),
        ("POST", f"/api/crm/contacts/import?teamId={team['team_id']}", "application/json"),
        ("POST", "/api/dnc/import", "text/csv"),
    ]
    with httpx.Client(base_url=server.base_url, headers=auth, timeout=120) as http:
        assert http.get("/api/team").status_code == 200  # warm: routes, auth, database
        before = peak_rss(server.proc.pid)
        for method, path, ctype in routes:
            r = http.request(method, path, content=chunks(),
                             headers={"Content-Type": ctype})
            assert r.status_code == 413, (path, r.status_code, r.text[:300])
            body = r.json()
            assert body["success"] is False and body["error"] == "Request body too large"
        # The connection is still usable, and so is the server.
        assert http.get("/api/team").status_code == 200
    grown = peak_rss(server.proc.pid) - before
    # Each refusal holds at most one route limit (10 MB for JSON) plus a chunk; the DNC
    # import spools to disk. Reading 64 MB whole would raise the peak by well over 64 MB.
    print(f"peak RSS grew by {grown / MB:.1f} MB")
    assert grown < 40 * MB, f"peak RSS grew by {grown / MB:.1f} MB"
    assert "Traceback" not in server.log()
