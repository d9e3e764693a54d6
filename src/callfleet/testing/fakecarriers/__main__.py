"""``python -m callfleet.testing.fakecarriers --port P``: the fake carriers as a process,
playing calls by themselves (callbacks every ``--step`` seconds). ``GET /_fake/config``
prints the credentials and the webhook public key to configure callfleet with."""

from __future__ import annotations

import argparse

import uvicorn

from callfleet.testing.fakecarriers.network import FakeNetwork, build_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--step", type=float, default=0.05,
                        help="Seconds between two callbacks of the calls in progress.")
    parser.add_argument("--media", action="store_true",
                        help="Answered calls talk over callfleet's media stream (needs "
                             "callfleet[voice] for espeak-ng).")
    args = parser.parse_args()
    net = FakeNetwork(auto=True, step_seconds=args.step, media=args.media)
    uvicorn.run(build_app(net), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
