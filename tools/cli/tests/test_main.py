"""The `herald` app without an API: usage errors exit 2, an absent API exits 4, each with one
line that says why and never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from herald_cli.main import app


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def invoke(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"TTY_COMPATIBLE": "0", **env})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_an_absent_api_exits_4_naming_the_url(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"

    code, text = invoke("--api-url", url, "--token", "t", "stats")

    assert code == 4
    assert text.startswith(f"error: cannot reach the API at {url}/api/v1")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--api-url", "localhost:8000", "stats"], "is not an http(s) URL"),
        (["mailings", "create", "--text", "x"], "missing --ends-at"),
        (["mailings", "create", "--ends-at", "+1x", "--text", "x"], "is not a time"),
        (["mailings", "create", "--file", "/nonexistent.yaml"], "cannot read"),
        (["clients", "edit", "1"], "nothing to change"),
        (["clients", "import", "clients.txt"], "--format csv|ndjson"),
        (["clients", "import", "/nonexistent.csv"], "cannot read /nonexistent.csv"),
    ],
)
def test_bad_local_input_exits_2_before_any_call(
    args: list[str], reason: str, closed_port: int
) -> None:
    code, text = invoke(
        *args, HERALD_API_URL=f"http://127.0.0.1:{closed_port}", HERALD_API_TOKEN="t"
    )

    assert code == 2
    assert reason in text


def test_no_token_anywhere_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERALD_API_TOKEN", raising=False)
    monkeypatch.delenv("HERALD_DEV_STATE_DIR", raising=False)

    code, text = invoke("stats")

    assert code == 2
    assert "no API token" in text


def test_typers_own_usage_errors_exit_2() -> None:
    assert invoke("clients", "get", "0")[0] == 2
    assert invoke("mailings", "watch", "1", "--interval", "0")[0] == 2
    assert invoke("mailings", "list", "--state", "gone")[0] == 2
