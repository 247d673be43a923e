"""The edge to the API: the base URL, the token's sources, and each kind of answer as a
result or a CliError (httpx's MockTransport for the answers, a closed port for no answer)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from herald_cli.api import Api, api_base, find_token_file, resolve_token
from herald_cli.errors import ApiError, ApiUnavailable, ExitCode, UsageProblem


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8000/api/v1",
        "http://127.0.0.1:8000/api/v1/",
    ],
)
def test_the_base_url_ends_in_the_api_prefix_once(url: str) -> None:
    assert api_base(url) == "http://127.0.0.1:8000/api/v1"


def test_a_base_url_behind_a_path_keeps_it() -> None:
    assert api_base("https://ops.example.com/herald") == "https://ops.example.com/herald/api/v1"


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://host", "http://", ""])
def test_a_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageProblem):
        api_base(url)


def test_the_given_token_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / ".herald").mkdir()
    (tmp_path / ".herald" / "api-token").write_text("from-file\n")

    assert resolve_token(" given ", tmp_path, {}) == "given"
    assert resolve_token(None, tmp_path, {}) == "from-file"


def test_the_token_file_is_found_from_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / ".herald").mkdir()
    (tmp_path / ".herald" / "api-token").write_text("t\n")
    below = tmp_path / "services" / "api"
    below.mkdir(parents=True)

    assert find_token_file(below, {}) == tmp_path / ".herald" / "api-token"


def test_herald_dev_state_dir_moves_the_token_file(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "api-token").write_text("t\n")
    (tmp_path / ".herald").mkdir()
    (tmp_path / ".herald" / "api-token").write_text("other\n")

    env = {"HERALD_DEV_STATE_DIR": "state"}
    assert find_token_file(tmp_path, env) == tmp_path / "state" / "api-token"
    assert resolve_token(None, tmp_path, env) == "t"


def test_no_token_anywhere_is_a_usage_error_saying_where_to_put_one(tmp_path: Path) -> None:
    with pytest.raises(UsageProblem, match="HERALD_API_TOKEN") as raised:
        resolve_token(None, tmp_path, {})
    assert raised.value.exit_code == ExitCode.USAGE


def api_answering(status: int, body: bytes, content_type: str = "application/json") -> Api:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer t"
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})

    return Api("http://api.test", "t", transport=httpx.MockTransport(answer))


def test_a_json_answer_is_returned_decoded_and_a_204_as_none() -> None:
    assert api_answering(200, b'{"id": 1}').call("GET", "/clients/1") == {"id": 1}
    assert api_answering(204, b"").call("DELETE", "/clients/1") is None


def test_an_error_status_raises_with_the_apis_reasons() -> None:
    body = {"detail": [{"loc": ["body", "timezone"], "msg": "unknown IANA time zone"}]}
    with pytest.raises(ApiError) as raised:
        api_answering(422, json.dumps(body).encode()).call("POST", "/clients", json={})

    assert raised.value.exit_code == ExitCode.REFUSED
    assert raised.value.lines[1] == "  timezone: unknown IANA time zone"


def test_a_success_without_json_is_not_herald() -> None:
    with pytest.raises(ApiUnavailable, match="without JSON"):
        api_answering(200, b"<html></html>", "text/html").call("GET", "/clients")


def test_a_missing_client_or_mailing_is_not_found() -> None:
    body = {"detail": "mailing 7 does not exist", "code": "not_found"}
    with pytest.raises(ApiError) as raised:
        api_answering(404, json.dumps(body).encode()).call("GET", "/mailings/7")

    assert raised.value.exit_code == ExitCode.NOT_FOUND


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # A path Herald's API does not have: Starlette's routing answer.
        (b'{"detail": "Not Found", "code": "not_found"}', "application/json"),
        (b'{"detail": "Not Found"}', "application/json"),
        # Another server altogether.
        (b"<html>404</html>", "text/html"),
    ],
)
def test_a_404_for_a_path_the_api_lacks_is_a_wrong_url_not_a_missing_entity(
    body: bytes, content_type: str
) -> None:
    # A script reads exit 3 as "no such mailing": a wrong --api-url must not look like that.
    with pytest.raises(ApiUnavailable, match="not a path of Herald's API") as raised:
        api_answering(404, body, content_type).call("GET", "/mailings/stats")

    assert raised.value.exit_code == ExitCode.UNAVAILABLE


def test_a_closed_port_is_unavailable_not_a_traceback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused

        with pytest.raises(ApiUnavailable, match="cannot reach the API") as raised:
            Api(f"http://127.0.0.1:{port}", "t").call("GET", "/clients")

    assert raised.value.exit_code == ExitCode.UNAVAILABLE


def test_paging_with_all_follows_next_after_to_the_end() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params["after"])
        seen.append(str(request.url.params))
        nxt = after + 2 if after < 4 else None
        return httpx.Response(200, json={"items": [after + 1, after + 2], "next_after": nxt})

    api = Api("http://api.test", "t", transport=httpx.MockTransport(answer))
    page = api.page("/clients", {"tag": "vip", "phone": None}, limit=2, after=0, every=True)

    assert page == {"items": [1, 2, 3, 4, 5, 6], "next_after": None}
    assert seen[0] == "tag=vip&limit=2&after=0"
    one = api.page("/clients", {}, limit=2, after=0, every=False)
    assert one == {"items": [1, 2], "next_after": 2}
