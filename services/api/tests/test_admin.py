"""The admin UI on the real app and a real PostgreSQL, logged in through a real OpenID
Connect provider (oidc-provider-mock, over HTTP on localhost): the login and who it lets in,
the session cookie, CSRF on every form, and each page's effect on the data."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import itsdangerous
import oidc_provider_mock
import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_api.main import create_app
from herald_api.settings import ApiSettings
from herald_devstack.probes import free_port

from .conftest import TOKEN, count_rows, insert_messages, started_app

SESSION_SECRET = "s" * 40
ADMIN = "alice@example.com"
VERIFIED = {"email": ADMIN, "email_verified": True}


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def admin_settings(issuer: str, **overrides: Any) -> dict[str, Any]:
    return {
        "oidc_issuer": issuer,
        "oidc_client_id": "herald-admin",
        "oidc_client_secret": SecretStr("client-secret"),
        "admin_session_secret": SecretStr(SESSION_SECRET),
        "oidc_redirect_url": "https://herald.test/admin/auth",
        "admin_emails": ADMIN,
        "admin_domains": "corp.example",
        "admin_groups": "herald-admins",
        **overrides,
    }


@pytest.fixture
async def admin_app(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str, issuer: str
) -> AsyncIterator[FastAPI]:
    async with started_app(migrated_db_url, amqp_url, **admin_settings(issuer)) as app:
        yield app


def browser(app: FastAPI) -> httpx.AsyncClient:
    # https: the session cookie is Secure by default, and a browser keeps it for https only.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://herald.test")


async def log_in(
    client: httpx.AsyncClient, issuer: str, sub: str, claims: dict[str, Any], next_path: str = ""
) -> httpx.Response:
    """What a browser does: start at Herald, sign in at the provider, come back with a code."""
    async with httpx.AsyncClient() as provider:
        stored = await provider.put(f"{issuer}/users/{sub}", json=claims)
        assert stored.status_code == 204
        start = await client.get(
            "/admin/login/start", params={"next": next_path} if next_path else None
        )
        assert start.status_code == 302, start.text
        authorize = start.headers["location"]
        assert authorize.startswith(f"{issuer}/")
        query = parse_qs(urlsplit(authorize).query)
        assert query["redirect_uri"] == ["https://herald.test/admin/auth"]
        assert query["code_challenge_method"] == ["S256"]
        granted = await provider.post(authorize, data={"sub": sub})
        assert granted.status_code == 302, granted.text
    back = urlsplit(granted.headers["location"])
    return await client.get(f"{back.path}?{back.query}")


class _FormReader(HTMLParser):
    """What a browser submits from one form: named inputs, textareas and selects, minus the
    disabled ones (also those inside a disabled fieldset)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.disabled_depth = 0
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "fieldset" and "disabled" in a:
            self.disabled_depth += 1
        off = self.disabled_depth > 0 or "disabled" in a
        name = a.get("name")
        if tag == "input" and name and not off:
            self.fields[name] = a.get("value") or ""
        elif tag == "textarea" and name and not off:
            self._textarea = name
            self.fields[name] = ""
        elif tag == "select" and name and not off:
            self._select = name
        elif (
            tag == "option"
            and self._select
            and ("selected" in a or self._select not in self.fields)
        ):
            self.fields[self._select] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "fieldset" and self.disabled_depth:
            self.disabled_depth -= 1
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def submitted(page: httpx.Response, form_id: str) -> dict[str, str]:
    reader = _FormReader(form_id)
    reader.feed(page.text)
    assert reader.fields, f"no form {form_id!r}"
    return reader.fields


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


@pytest.fixture
async def admin(admin_app: FastAPI, issuer: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser logged in as an allowed operator."""
    async with browser(admin_app) as client:
        landed = await log_in(client, issuer, ADMIN, VERIFIED | {"name": "Alice"})
        assert landed.status_code == 303
        yield client


async def token(client: httpx.AsyncClient) -> str:
    return csrf_of(await client.get("/admin/"))


async def test_pages_redirect_to_login_and_json_is_401_without_a_session(
    admin_app: FastAPI,
) -> None:
    async with browser(admin_app) as client:
        for path in ("/admin/", "/admin/mailings", "/admin/clients?tag=vip", "/admin/mailings/1"):
            page = await client.get(path)
            assert page.status_code == 303, path
            location = urlsplit(page.headers["location"])
            assert location.path == "/admin/login"
            assert parse_qs(location.query)["next"] == [path]
        for path in ("/admin/mailings/progress?ids=1", "/admin/audience"):
            answer = await client.get(path)
            assert answer.status_code == 401, path
            assert answer.json()["code"] == "login_required"
        refused = await client.post("/admin/clients/new", data={"phone": "79001234567"})
        assert refused.status_code == 303
        login = await client.get("/admin/login")
        assert login.status_code == 200
        assert "Log in with single sign-on" in login.text


PUBLIC_ROUTES = {"login", "login_start", "auth_callback", "static"}


def admin_routes() -> list[tuple[str, str, str]]:
    """(name, method, a concrete path) of every route of the admin app's routers."""
    from starlette.routing import Route

    from herald_api.admin import auth, clients, json_routes, mailings

    found = []
    for module in (auth, clients, mailings, json_routes):
        for route in module.router.routes:
            assert isinstance(route, Route)
            path = "/admin" + re.sub(r"\{[^}]+\}", "1", route.path)
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.append((route.name, method, path))
    return found


async def test_every_admin_route_but_the_login_needs_a_session_and_posts_a_token(
    admin_app: FastAPI, admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    routes = admin_routes()
    assert {name for name, _, _ in routes} >= {"dashboard", "mailing_create", "client_delete"}
    async with browser(admin_app) as stranger:
        for name, method, path in routes:
            if name in PUBLIC_ROUTES:
                continue
            answer = await stranger.request(method, path)
            assert answer.status_code in (303, 401), (name, answer.status_code)
            if answer.status_code == 303:
                assert urlsplit(answer.headers["location"]).path == "/admin/login", name
    seeded = await seed_running_mailing(clean_engine, ["pending"])
    for name, method, path in routes:
        if method == "GET":
            continue
        path = path.replace("/1/", f"/{seeded}/")
        refused = await admin.request(method, path, data={"csrf_token": "forged"})
        assert refused.status_code == 403, (name, refused.status_code)
    async with clean_engine.connect() as conn:
        state = (
            await conn.execute(
                text("SELECT paused_at, deleted_at, text FROM mailing WHERE id = :id"),
                {"id": seeded},
            )
        ).one()
    assert (state.paused_at, state.deleted_at, state.text) == (None, None, "hi")
    assert await count_rows(clean_engine, "client") == 1  # the seeded mailing's client only


async def test_a_callback_nobody_started_changes_nothing_and_shows_no_words_of_its_own(
    admin: httpx.AsyncClient,
) -> None:
    crafted = await admin.get(
        "/admin/auth", params={"error": "call +1 555 0100 to unlock", "state": "x"}
    )
    assert crafted.status_code == 303
    assert (await admin.get("/admin/")).status_code == 200  # still logged in
    page = await admin.get("/admin/login")
    assert "555" not in page.text


async def test_notices_come_from_the_server_not_from_links(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/admin/mailings", params={"notice": "Session expired, go to evil"})
    assert "evil" not in page.text


async def test_json_endpoints_answer_json_errors_and_are_not_cached(
    admin: httpx.AsyncClient,
) -> None:
    bad = await admin.get("/admin/audience", params={"tags": "x" * 9000})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_input"
    ok = await admin.get("/admin/mailings/progress", params={"ids": "1"})
    assert ok.headers["cache-control"] == "no-store"


async def test_the_admin_upload_is_refused_beyond_the_import_limit(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str, issuer: str
) -> None:
    settings = admin_settings(issuer, import_max_bytes=1024)
    async with started_app(migrated_db_url, amqp_url, **settings) as app, browser(app) as client:
        await log_in(client, issuer, ADMIN, VERIFIED)
        csrf = await token(client)
        big = b"phone,timezone\n" + b"79990000001,UTC\n" * 80_000  # 1.3 MB
        refused = await client.post(
            "/admin/clients/import",
            data={"csrf_token": csrf},
            files={"file": ("clients.csv", big, "text/csv")},
        )
        assert refused.status_code == 413
    assert await count_rows(clean_engine, "client") == 0


async def test_login_sets_a_secure_http_only_cookie_and_lands_on_the_page_asked_for(
    admin_app: FastAPI, issuer: str
) -> None:
    async with browser(admin_app) as client:
        landed = await log_in(client, issuer, ADMIN, VERIFIED, "/admin/clients?tag=vip")
        assert landed.status_code == 303
        assert landed.headers["location"] == "/admin/clients?tag=vip"
        cookie = landed.headers["set-cookie"].lower()
        for attribute in ("herald_admin=", "httponly", "secure", "samesite=lax", "path=/admin"):
            assert attribute in cookie, cookie
        page = await client.get("/admin/clients?tag=vip")
        assert page.status_code == 200
        assert ADMIN in page.text


async def test_a_configured_redirect_url_is_what_the_provider_is_told(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str, issuer: str
) -> None:
    public = "https://herald.example.org/admin/auth"
    settings = admin_settings(issuer, oidc_redirect_url=public)
    async with started_app(migrated_db_url, amqp_url, **settings) as app, browser(app) as client:
        start = await client.get("/admin/login/start")
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert query["redirect_uri"] == [public]


async def test_a_forged_host_header_does_not_choose_where_the_login_code_goes(
    admin_app: FastAPI,
) -> None:
    # The provider sends the code to the redirect URI: taken from the request, a Host header
    # of the attacker's choosing would have it sent to them.
    async with browser(admin_app) as client:
        start = await client.get("/admin/login/start", headers={"Host": "evil.example"})
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert query["redirect_uri"] == ["https://herald.test/admin/auth"]


async def test_login_never_leads_off_site(admin_app: FastAPI, issuer: str) -> None:
    async with browser(admin_app) as client:
        landed = await log_in(client, issuer, ADMIN, VERIFIED, "//evil.example/admin")
        assert landed.headers["location"] == "/admin/"


@pytest.mark.parametrize(
    ("sub", "claims", "allowed"),
    [
        ("carol", {"email": "carol@corp.example", "email_verified": True}, True),
        ("dave", {"email": "dave@elsewhere.example", "groups": ["herald-admins"]}, True),
        ("mallory", {"email": "mallory@elsewhere.example", "email_verified": True}, False),
        ("eve", {"email": ADMIN, "email_verified": False}, False),
        ("trudy", {"email": ADMIN}, False),  # no email_verified claim at all
    ],
)
async def test_only_listed_emails_domains_or_groups_get_in(
    admin_app: FastAPI, issuer: str, sub: str, claims: dict[str, Any], allowed: bool
) -> None:
    async with browser(admin_app) as client:
        landed = await log_in(client, issuer, sub, claims)
        assert landed.status_code == 303
        if allowed:
            assert landed.headers["location"] == "/admin/"
            assert (await client.get("/admin/")).status_code == 200
            return
        assert urlsplit(landed.headers["location"]).path == "/admin/login"
        refused = await client.get("/admin/login")
        assert refused.status_code == 403
        assert "Not logged in" in refused.text
        assert (await client.get("/admin/")).status_code == 303
        # The reason is not something a link can make the page say.
        crafted = await client.get("/admin/login", params={"error": "call +1 555 0100"})
        assert "555" not in crafted.text


async def test_a_login_with_a_forged_state_is_refused(admin_app: FastAPI) -> None:
    async with browser(admin_app) as client:
        await client.get("/admin/login/start")
        back = await client.get("/admin/auth", params={"code": "stolen", "state": "forged"})
        assert back.status_code == 303
        assert (await client.get("/admin/login")).status_code == 403
        assert (await client.get("/admin/")).status_code == 303


async def test_every_form_needs_the_sessions_csrf_token(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = {"phone": "79001234567", "tag": "vip", "timezone": "UTC"}
    for given in (None, "", "wrong-token"):
        data = body if given is None else {**body, "csrf_token": given}
        refused = await admin.post("/admin/clients/new", data=data)
        assert refused.status_code == 403, given
    header = await admin.post("/admin/clients/new", data=body, headers={"X-CSRF-Token": "x"})
    assert header.status_code == 403
    assert await count_rows(clean_engine, "client") == 0
    accepted = await admin.post(
        "/admin/clients/new", data={**body, "csrf_token": await token(admin)}
    )
    assert accepted.status_code == 303
    assert await count_rows(clean_engine, "client") == 1


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({"X-CSRF-Token": "jeton-évidemment-faux".encode()}, {}),
        ({"X-CSRF-Token": b"\xff\xfe"}, {}),
        ({}, {"csrf_token": "jeton-évidemment-faux"}),
        ({}, {"csrf_token": "токен"}),
    ],
    ids=["header-utf8", "header-bytes", "form-latin", "form-cyrillic"],
)
async def test_a_non_ascii_csrf_token_is_refused_with_403_not_a_500(
    admin: httpx.AsyncClient,
    clean_engine: AsyncEngine,
    headers: dict[str, bytes],
    data: dict[str, str],
) -> None:
    body = {"phone": "79001234567", "tag": "vip", "timezone": "UTC", **data}
    refused = await admin.post("/admin/clients/new", data=body, headers=headers)
    assert refused.status_code == 403
    assert "The form was stale or came from another site" in refused.text
    assert await count_rows(clean_engine, "client") == 0


async def test_logout_ends_the_session_also_for_a_copied_cookie(
    admin: httpx.AsyncClient, admin_app: FastAPI, clean_engine: AsyncEngine
) -> None:
    stolen = dict(admin.cookies)
    out = await admin.post("/admin/logout", data={"csrf_token": await token(admin)})
    assert out.status_code == 303
    assert (await admin.get("/admin/")).status_code == 303
    async with browser(admin_app) as thief:
        thief.cookies.update(stolen)
        assert (await thief.get("/admin/")).status_code == 303
    async with clean_engine.connect() as conn:
        ended = await conn.scalar(
            text("SELECT count(*) FROM admin_session WHERE ended_at IS NOT NULL")
        )
    assert ended == 1


async def test_an_expired_session_needs_a_new_login(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    assert (await admin.get("/admin/")).status_code == 200
    async with clean_engine.begin() as conn:
        await conn.execute(text("UPDATE admin_session SET expires_at = now() - interval '1 s'"))
    assert (await admin.get("/admin/")).status_code == 303


async def test_sessions_are_stored_by_hash_not_by_id(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id_hash, email FROM admin_session"))).all()
    assert [r.email for r in rows] == [ADMIN]
    signed = admin.cookies["herald_admin"].encode()
    data = itsdangerous.TimestampSigner(SESSION_SECRET).unsign(signed)
    session = json.loads(base64.b64decode(data))
    assert rows[0].id_hash == hashlib.sha256(session["sid"].encode()).digest()
    assert session["sid"].encode() not in bytes(rows[0].id_hash)


async def test_clients_added_edited_searched_and_deleted_through_the_forms(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine, admin_app: FastAPI
) -> None:
    csrf = await token(admin)
    added = await admin.post(
        "/admin/clients/new",
        data={
            "csrf_token": csrf,
            "phone": "79161234567",
            "tag": "vip",
            "timezone": "Asia/Vladivostok",
        },
    )
    assert added.status_code == 303
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(admin_app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as api:
        (client,) = (await api.get("/api/v1/clients")).json()["items"]
        assert (client["phone"], client["operator_code"], client["tag"]) == (
            "79161234567",
            "916",
            "vip",
        )
        found = await admin.get("/admin/clients", params={"phone": "79161234567"})
        assert "79161234567" in found.text
        missing = await admin.get("/admin/clients", params={"tag": "nobody"})
        assert "No clients found" in missing.text
        edited = await admin.post(
            f"/admin/clients/{client['id']}/edit",
            data={
                "csrf_token": csrf,
                "phone": "79161234567",
                "tag": "gold",
                "timezone": "UTC",
                "operator_code": "999",
            },
        )
        assert edited.status_code == 303
        after = (await api.get(f"/api/v1/clients/{client['id']}")).json()
        assert (after["tag"], after["timezone"], after["operator_code"]) == ("gold", "UTC", "999")
        deleted = await admin.post(
            f"/admin/clients/{client['id']}/delete", data={"csrf_token": csrf}
        )
        assert deleted.status_code == 303
        assert (await api.get(f"/api/v1/clients/{client['id']}")).status_code == 404


async def test_client_form_errors_name_the_field_and_write_nothing(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    csrf = await token(admin)
    bad = await admin.post(
        "/admin/clients/new",
        data={"csrf_token": csrf, "phone": "8900", "tag": "vip", "timezone": "Mars/Olympus"},
    )
    assert bad.status_code == 422
    assert 'id="error-phone"' in bad.text
    assert "unknown IANA time zone" in bad.text
    assert 'value="8900"' in bad.text  # what was typed stays in the form
    assert await count_rows(clean_engine, "client") == 0
    body = {"csrf_token": csrf, "phone": "79001234567", "timezone": "UTC"}
    assert (await admin.post("/admin/clients/new", data=body)).status_code == 303
    twice = await admin.post("/admin/clients/new", data=body)
    assert twice.status_code == 409
    assert "already exists" in twice.text
    assert await count_rows(clean_engine, "client") == 1


async def test_a_mailing_created_through_the_form_is_stored_in_utc(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    created = await admin.post(
        "/admin/mailings/new",
        data={
            "csrf_token": await token(admin),
            "tz": "Asia/Vladivostok",
            "starts_at": "2030-01-10T09:00",
            "ends_at": "2030-01-10T18:00",
            "text": "<b>Sale</b> & more",
            "operator_codes": "900, 916",
            "tags": "vip",
            "window_start": "10:00",
            "window_end": "20:00",
        },
    )
    assert created.status_code == 303
    mailing_id = int(created.headers["location"].rsplit("/", 1)[1])
    async with clean_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT starts_at, ends_at, text, filter_operator_codes, filter_tags, "
                    "window_start FROM mailing WHERE id = :id"
                ),
                {"id": mailing_id},
            )
        ).one()
    assert row.starts_at == datetime(2030, 1, 9, 23, 0, tzinfo=UTC)
    assert row.ends_at == datetime(2030, 1, 10, 8, 0, tzinfo=UTC)
    assert (row.text, row.filter_operator_codes, row.filter_tags) == (
        "<b>Sale</b> & more",
        ["900", "916"],
        ["vip"],
    )
    assert str(row.window_start) == "10:00:00"
    page = await admin.get(f"/admin/mailings/{mailing_id}")
    assert page.status_code == 200
    assert "&lt;b&gt;Sale&lt;/b&gt; &amp; more" in page.text  # user text is escaped
    assert "<b>Sale</b>" not in page.text


async def test_mailing_form_errors_keep_the_input_and_write_nothing(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    bad = await admin.post(
        "/admin/mailings/new",
        data={
            "csrf_token": await token(admin),
            "tz": "UTC",
            "starts_at": "2030-01-10T09:00",
            "ends_at": "2030-01-10T08:00",
            "text": "kept",
            "operator_codes": "12",
        },
    )
    assert bad.status_code == 422
    assert 'id="error-ends_at"' in bad.text
    assert 'id="error-operator_codes"' in bad.text
    assert ">kept</textarea>" in bad.text
    assert await count_rows(clean_engine, "mailing") == 0


async def seed_running_mailing(engine: AsyncEngine, statuses: list[str]) -> int:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        mailing_id = await conn.scalar(
            text(
                "INSERT INTO mailing (starts_at, ends_at, text, started_at) "
                "VALUES (:s, :e, 'hi', :s) RETURNING id"
            ),
            {"s": now - timedelta(minutes=5), "e": now + timedelta(hours=1)},
        )
        client_ids = [
            await conn.scalar(
                text(
                    "INSERT INTO client (phone, operator_code, tag, timezone) "
                    "VALUES (:p, '900', 'vip', 'UTC') RETURNING id"
                ),
                {"p": f"7900000{index:04d}"},
            )
            for index in range(len(statuses))
        ]
        await insert_messages(conn, int(mailing_id), [int(c) for c in client_ids], statuses)
    return int(mailing_id)


async def test_a_started_mailing_saves_what_its_form_sends_and_refuses_a_new_filter(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    # Started 5 min ago to the microsecond: the form must not turn that into a change.
    mailing_id = await seed_running_mailing(clean_engine, ["pending"])
    async with clean_engine.connect() as conn:
        before = (
            await conn.execute(
                text("SELECT starts_at, ends_at FROM mailing WHERE id = :id"), {"id": mailing_id}
            )
        ).one()
    form = await admin.get(f"/admin/mailings/{mailing_id}/edit")
    assert form.status_code == 200
    assert "has started" in form.text
    fields = submitted(form, "mailing-form")
    assert "starts_at" not in fields  # disabled: not sent
    assert "operator_codes" not in fields  # its fieldset is disabled
    saved = await admin.post(
        f"/admin/mailings/{mailing_id}/edit", data={**fields, "text": "new text"}
    )
    assert saved.status_code == 303, saved.text
    async with clean_engine.connect() as conn:
        after = (
            await conn.execute(
                text("SELECT starts_at, ends_at, text FROM mailing WHERE id = :id"),
                {"id": mailing_id},
            )
        ).one()
    assert after.text == "new text"
    # Untouched, to the microsecond: the form's times (to the second) were not sent back.
    assert (after.starts_at, after.ends_at) == (before.starts_at, before.ends_at)
    # A filter posted anyway (not through the page) is refused, with the reason.
    refused = await admin.post(
        f"/admin/mailings/{mailing_id}/edit",
        data={**fields, "operator_codes": "901", "tags": ""},
    )
    assert refused.status_code == 409
    assert "can no longer change" in refused.text


async def test_a_double_submitted_form_creates_one_mailing(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    fields = submitted(await admin.get("/admin/mailings/new"), "mailing-form")
    assert fields["form_key"]
    fields |= {
        "starts_at": "2030-01-10T09:00",
        "ends_at": "2030-01-10T18:00",
        "text": "once",
    }
    first = await admin.post("/admin/mailings/new", data=fields)
    second = await admin.post("/admin/mailings/new", data=fields)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert await count_rows(clean_engine, "mailing") == 1
    other = await admin.post("/admin/mailings/new", data={**fields, "text": "changed"})
    assert other.status_code == 409
    assert "open a new form" in other.text
    assert await count_rows(clean_engine, "mailing") == 1


async def test_a_finished_mailing_with_failures_can_still_retry_them(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    mailing_id = await seed_running_mailing(clean_engine, ["sent", "failed"])
    async with clean_engine.begin() as conn:
        await conn.execute(
            text("UPDATE mailing SET finished_at = now() WHERE id = :id"), {"id": mailing_id}
        )
    page = await admin.get(f"/admin/mailings/{mailing_id}")
    assert 'id="state" data-live-for' in page.text
    assert ">finished<" in page.text
    assert "Retry failed" in page.text
    retried = await admin.post(
        f"/admin/mailings/{mailing_id}/retry-failed", data={"csrf_token": csrf_of(page)}
    )
    assert retried.status_code == 303
    shown = await admin.get(retried.headers["location"])
    assert "1 failed messages queued again." in shown.text
    assert "Retry failed" not in shown.text


async def test_detail_page_filters_messages_and_the_controls_act(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    mailing_id = await seed_running_mailing(clean_engine, ["sent", "sent", "failed", "pending"])
    page = await admin.get(f"/admin/mailings/{mailing_id}", params={"status": "failed"})
    assert page.status_code == 200
    rows = re.findall(r'<span class="state s-(\w+)">', page.text)
    assert rows == ["failed"]
    assert "Retry failed" in page.text
    progress = (
        await admin.get("/admin/mailings/progress", params={"ids": f"{mailing_id},x"})
    ).json()
    assert progress[str(mailing_id)]["done"] == 3
    assert progress[str(mailing_id)]["total"] == 4
    assert progress[str(mailing_id)]["percent"] == 75.0
    csrf = csrf_of(page)
    assert (
        await admin.post(f"/admin/mailings/{mailing_id}/pause", data={"csrf_token": csrf})
    ).status_code == 303
    assert (await admin.get("/admin/mailings/progress", params={"ids": str(mailing_id)})).json()[
        str(mailing_id)
    ]["state"] == "paused"
    assert (
        await admin.post(f"/admin/mailings/{mailing_id}/resume", data={"csrf_token": csrf})
    ).status_code == 303
    retried = await admin.post(
        f"/admin/mailings/{mailing_id}/retry-failed", data={"csrf_token": csrf}
    )
    assert retried.headers["location"] == f"/admin/mailings/{mailing_id}"
    assert "1 failed messages queued again." in (await admin.get(retried.headers["location"])).text
    cancelled = await admin.post(f"/admin/mailings/{mailing_id}/cancel", data={"csrf_token": csrf})
    assert cancelled.status_code == 303
    async with clean_engine.connect() as conn:
        statuses = (
            await conn.scalars(
                text("SELECT status FROM message WHERE mailing_id = :id ORDER BY id"),
                {"id": mailing_id},
            )
        ).all()
    assert list(statuses) == ["sent", "sent", "cancelled", "cancelled"]
    assert (await admin.get(f"/admin/mailings/{mailing_id}")).status_code == 404


async def test_audience_preview_counts_live_matching_clients(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO client (phone, operator_code, tag, timezone, deleted_at) VALUES "
                "('79000000001', '900', 'vip', 'UTC', NULL), "
                "('79000000002', '900', 'new', 'UTC', NULL), "
                "('79160000003', '916', 'vip', 'UTC', NULL), "
                "('79000000004', '900', 'vip', 'UTC', now())"
            )
        )
    for query, expected in (
        ({}, 3),
        ({"tags": "vip"}, 2),
        ({"operator_codes": "900"}, 2),
        ({"operator_codes": "900 916", "tags": "vip, new"}, 3),
        ({"operator_codes": "900", "tags": "vip"}, 1),
    ):
        assert (await admin.get("/admin/audience", params=query)).json()["count"] == expected, query


async def test_csv_import_all_or_nothing_with_errors_by_line(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    csrf = await token(admin)
    bad = (
        b"phone,timezone,tag\n79990000001,UTC,bulk\n7999,UTC,bulk\n79990000003,Nowhere/City,bulk\n"
    )
    refused = await admin.post(
        "/admin/clients/import",
        data={"csrf_token": csrf, "on_duplicate": "update"},
        files={"file": ("clients.csv", bad, "text/csv")},
    )
    assert refused.status_code == 422
    assert "Nothing was imported" in refused.text
    assert re.findall(r"<tr><td>(\d+)</td><td>(\w+)</td>", refused.text) == [
        ("3", "phone"),
        ("4", "timezone"),
    ]
    assert await count_rows(clean_engine, "client") == 0
    good = b"phone,timezone,tag\n79990000001,UTC,bulk\n79990000002,Europe/Moscow,bulk\n"
    imported = await admin.post(
        "/admin/clients/import",
        data={"csrf_token": csrf, "on_duplicate": "update"},
        files={"file": ("clients.csv", good, "text/csv")},
    )
    assert imported.status_code == 200
    assert "2 created, 0 updated, 0 skipped" in imported.text
    again = await admin.post(
        "/admin/clients/import",
        data={"csrf_token": csrf, "on_duplicate": "reject"},
        files={"file": ("clients.csv", good, "text/csv")},
    )
    assert again.status_code == 409
    assert "79990000001" in again.text
    assert await count_rows(clean_engine, "client") == 2


async def test_an_import_logs_one_clients_imported_line_naming_who_did_it(
    admin: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    csrf = await token(admin)
    body = b'{"phone": "79990000001", "timezone": "UTC"}\n'
    with structlog.testing.capture_logs() as logs:
        imported = await admin.post(
            "/admin/clients/import",
            data={"csrf_token": csrf, "on_duplicate": "skip"},
            files={"file": ("clients.ndjson", body, "application/x-ndjson")},
        )

    assert imported.status_code == 200
    (line,) = [line for line in logs if line["event"] == "clients_imported"]
    assert line["by"] == ADMIN
    assert (line["format"], line["on_duplicate"]) == ("ndjson", "skip")
    assert (line["created"], line["updated"], line["skipped"], line["total"]) == (1, 0, 0, 1)
    assert line["duration_ms"] >= line["copy_ms"] >= 0


async def test_pages_carry_a_strict_content_security_policy(admin: httpx.AsyncClient) -> None:
    for path in (
        "/admin/",
        "/admin/mailings",
        "/admin/clients",
        "/admin/mailings/new",
        "/admin/clients/import",
    ):
        page = await admin.get(path)
        assert page.status_code == 200, path
        policy = page.headers.get_list("content-security-policy")
        assert len(policy) == 1, path
        assert "script-src 'self';" in policy[0]
        assert "unsafe-inline" not in policy[0]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
    assert (await admin.get("/admin/mailings/999999")).status_code == 404
    assert (await admin.get("/admin/static/admin.js")).status_code == 200


async def test_the_admin_is_off_until_an_issuer_is_configured(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str
) -> None:
    async with started_app(migrated_db_url, amqp_url) as app, browser(app) as client:
        page = await client.get("/admin/")
        assert page.status_code == 404
        assert "HERALD_OIDC_ISSUER" in page.text


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"oidc_client_id": ""}, "HERALD_OIDC_CLIENT_ID"),
        ({"admin_session_secret": SecretStr("short")}, "HERALD_ADMIN_SESSION_SECRET"),
        ({"admin_session_secret": SecretStr("")}, "HERALD_ADMIN_SESSION_SECRET"),
        (
            {"admin_session_secret": SecretStr("CHANGE-ME-TO-32-OR-MORE-RANDOM-CHARACTERS")},
            "HERALD_ADMIN_SESSION_SECRET",
        ),
        ({"oidc_redirect_url": ""}, "HERALD_OIDC_REDIRECT_URL"),
        ({"oidc_redirect_url": "/admin/auth"}, "HERALD_OIDC_REDIRECT_URL"),
        ({"admin_emails": "", "admin_domains": "", "admin_groups": ""}, "HERALD_ADMIN_EMAILS"),
        ({"oidc_issuer": "ftp://idp"}, "HERALD_OIDC_ISSUER"),
        ({"oidc_issuer": "http://sso.example.com/realms/herald"}, "HERALD_OIDC_ISSUER"),
        ({"oidc_scopes": "email profile"}, "HERALD_OIDC_SCOPES"),
        ({"oidc_redirect_url": "https://herald.example/callback"}, "HERALD_OIDC_REDIRECT_URL"),
    ],
)
def test_admin_settings_refuse_what_cannot_work(overrides: dict[str, Any], variable: str) -> None:
    from pydantic import ValidationError

    from herald_api.settings import ApiSettings
    from herald_common.settings import describe_errors

    with pytest.raises(ValidationError) as raised:
        ApiSettings(
            database_url="postgresql://h@127.0.0.1/h",
            amqp_url="amqp://127.0.0.1/",
            api_token=SecretStr(TOKEN),
            **admin_settings("http://localhost:1", **overrides),
        )
    # What the operator reads (settings_invalid, stderr): one line, naming the variable.
    [problem] = describe_errors(raised.value)
    assert variable in problem


async def test_a_database_that_cannot_be_reached_is_a_page_saying_to_retry(
    admin: httpx.AsyncClient, issuer: str
) -> None:
    # The same session cookie on an API whose database refuses every connection.
    unreachable = ApiSettings(
        database_url=f"postgresql+psycopg://herald:herald@127.0.0.1:{free_port()}/herald",
        amqp_url="amqp://guest:guest@127.0.0.1:9/",
        api_token=SecretStr(TOKEN),
        **admin_settings(issuer),
    )
    app = create_app(unreachable)
    async with app.router.lifespan_context(app), browser(app) as client:
        client.cookies = admin.cookies
        page = await client.get("/admin/")
        progress = await client.get("/admin/mailings/progress?ids=1")

    assert page.status_code == 503
    assert page.headers["Retry-After"] == "2"
    assert page.headers["content-type"].startswith("text/html")
    assert "The database cannot be reached for the moment; retry shortly." in page.text
    assert progress.status_code == 503
    assert progress.json()["code"] == "unavailable"
