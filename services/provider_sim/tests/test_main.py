"""The console script: prints its URL once listening, stops promptly on SIGTERM, issues tokens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from herald_provider_sim.tokens import TokenVerifier

COMMAND = [sys.executable, "-m", "herald_provider_sim.main"]


def test_serve_announces_url_answers_and_stops_on_sigterm() -> None:
    env = {**os.environ, "HERALD_SIM_JWT_SECRET": "cli-secret", "HERALD_SIM_ERROR_RATIO": "1"}
    process = subprocess.Popen(
        [*COMMAND, "--port", "0"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["event"] == "provider_sim_started"
        url: str = started["url"]
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        faults = httpx.get(url.removesuffix("/v1") + "/_sim/faults").json()
        assert faults["error_ratio"] == 1.0

        stop_started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - stop_started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_token_command_prints_a_token_the_simulator_accepts() -> None:
    output = subprocess.run(
        [*COMMAND, "token", "--secret", "S"], capture_output=True, text=True, check=True
    )

    assert TokenVerifier("S").verify(f"Bearer {output.stdout.strip()}")
