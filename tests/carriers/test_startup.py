"""A real carrier without its public URL or account is a clear error at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from callfleet.carriers.router import check_startup
from callfleet.config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_check_startup() -> None:
    check_startup(settings())  # the simulated carrier needs nothing
    with pytest.raises(ValueError, match="CALLFLEET_PUBLIC_URL is not set"):
        check_startup(settings(carrier="twilio", twilio_account_sid="AC" + "0" * 32,
                               twilio_auth_token="t"))
    with pytest.raises(ValueError, match="CALLFLEET_PUBLIC_URL is not set"):
        # a deployment account configured beside the simulated default needs it too
        check_startup(settings(telnyx_api_key="k", telnyx_connection_id="1"))
    with pytest.raises(ValueError, match="absolute http"):
        check_startup(settings(carrier="twilio", public_url="callfleet.example.com"))
    with pytest.raises(ValueError, match="CALLFLEET_TWILIO_AUTH_TOKEN"):
        check_startup(settings(carrier="twilio", public_url="https://cf.example.com",
                               twilio_account_sid="AC" + "0" * 32))
    with pytest.raises(ValueError, match="CALLFLEET_TELNYX_PUBLIC_KEY"):
        check_startup(settings(carrier="telnyx", public_url="https://cf.example.com",
                               telnyx_api_key="k", telnyx_connection_id="1"))
    with pytest.raises(ValueError, match="unknown carrier"):
        check_startup(settings(carrier="vonage"))
    check_startup(settings(carrier="telnyx", public_url="https://cf.example.com",
                           telnyx_api_key="k", telnyx_connection_id="1",
                           telnyx_public_key="A" * 43 + "="))


def test_serve_refuses_to_start_without_a_public_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
    env.update(CALLFLEET_DATA_DIR=str(tmp_path), CALLFLEET_CARRIER="twilio",
               CALLFLEET_TWILIO_ACCOUNT_SID="AC" + "0" * 32,
               CALLFLEET_TWILIO_AUTH_TOKEN="secret-token")
    done = subprocess.run([sys.executable, "-m", "callfleet.cli", "serve", "--port", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "CALLFLEET_PUBLIC_URL is not set" in done.stderr
    assert "secret-token" not in done.stderr + done.stdout
