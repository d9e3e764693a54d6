"""Serving the fake carriers on a local port: inside a test's event loop (:func:`serving`)
or as a process of its own (``__main__``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from callfleet.testing.fakecarriers.network import FakeNetwork, build_app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(net: FakeNetwork, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run the fake on a free local port while the block runs; yields its base URL."""
    port = free_port(host)
    server = uvicorn.Server(uvicorn.Config(build_app(net), host=host, port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    net.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await net.stop()
        server.should_exit = True
        await task
