"""The edge to Herald's REST API: where it is, the token, and one call that either returns the
decoded answer or raises a ``CliError`` (see ``herald_cli.errors`` for the tree)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import typer

from herald_cli.errors import ApiError, ApiUnavailable, UsageProblem, names_missing_entity

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
# Where `make run` keeps the token it generated (HERALD_DEV_STATE_DIR moves the directory).
TOKEN_FILE = Path(".herald") / "api-token"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# A bulk import is answered once the last row is committed: a million rows take ~15 s.
IMPORT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)


def api_base(url: str) -> str:
    """``http://host:8000``, with or without a trailing ``/`` or ``/api/v1``, as the base of
    every call: ``http://host:8000/api/v1``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageProblem(f"--api-url / HERALD_API_URL {url!r} is not an http(s) URL")
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parts.scheme}://{parts.netloc}{path}{API_PREFIX}"


def find_token_file(cwd: Path, env: Mapping[str, str]) -> Path | None:
    """``$HERALD_DEV_STATE_DIR/api-token``, else the nearest ``.herald/api-token`` from ``cwd``
    upwards (so that any folder of the checkout running `make run` finds it)."""
    state_dir = env.get("HERALD_DEV_STATE_DIR")
    if state_dir:
        candidate = Path(state_dir) / "api-token"
        if not candidate.is_absolute():
            candidate = cwd / candidate
        return candidate if candidate.is_file() else None
    for folder in (cwd, *cwd.parents):
        if (folder / TOKEN_FILE).is_file():
            return folder / TOKEN_FILE
    return None


def resolve_token(given: str | None, cwd: Path, env: Mapping[str, str]) -> str:
    """--token / HERALD_API_TOKEN, else the file `make run` wrote."""
    if given:
        return given.strip()
    path = find_token_file(cwd, env)
    if path is not None:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    raise UsageProblem(
        "no API token: set HERALD_API_TOKEN or pass --token "
        "(under `make run` it is in .herald/api-token, found from the current folder upwards)"
    )


class Api:
    """One httpx client to the API for the length of a command."""

    def __init__(
        self, url: str, token: str | None, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = api_base(url)
        self._token = token
        self._transport = transport
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            token = resolve_token(self._token, Path.cwd(), os.environ)
            self._client = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {token}", "User-Agent": "herald-cli"},
                timeout=TIMEOUT,
                transport=self._transport,
            )
        return self._client

    def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        content: Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        """The answer's JSON (None for a 204); raises ``ApiError`` for an error status,
        ``ApiUnavailable`` when there is no usable answer."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http().request(
                method,
                path,
                json=json,
                params=query,
                content=content,
                headers=headers,
                timeout=timeout or TIMEOUT,
            )
        except httpx.TimeoutException:
            raise ApiUnavailable(f"the API at {self.base_url} did not answer in time") from None
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise ApiUnavailable(f"cannot reach the API at {self.base_url}: {reason}") from None
        if response.status_code == 204:
            return None
        body = _decoded(response)
        if response.status_code == 404 and not names_missing_entity(body):
            raise ApiUnavailable(
                f"{self.base_url}{path} is not a path of Herald's API (404): is --api-url "
                "the API's root, as in http://127.0.0.1:8000?"
            )
        if response.status_code >= 400:
            raise ApiError(response.status_code, body if body is not None else response.text)
        if body is None:
            raise ApiUnavailable(
                f"{self.base_url}{path} answered {response.status_code} without JSON: "
                "is --api-url Herald's API?"
            )
        return body

    def page(
        self, path: str, params: Mapping[str, Any], *, limit: int, after: int, every: bool
    ) -> dict[str, Any]:
        """One page of a list (``{"items", "next_after"}``), or with ``every`` all the pages
        from ``after`` on, as one page whose ``next_after`` is null."""
        items: list[Any] = []
        while True:
            page = self.call("GET", path, params={**params, "limit": limit, "after": after})
            items += page["items"]
            if not every or page.get("next_after") is None:
                return {"items": items, "next_after": page.get("next_after")}
            after = page["next_after"]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _decoded(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def api_of(ctx: typer.Context) -> Api:
    """The command's ``Api``, made by the ``herald`` callback from --api-url and --token."""
    found = ctx.find_object(Api)
    if found is None:  # a sub-app invoked without the root: a programming error
        raise RuntimeError("herald_cli commands run under the `herald` app")
    return found
