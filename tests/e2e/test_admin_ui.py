"""The admin UI in a real headless Chromium (Playwright, Debian's chromium), against Herald as
real processes and a real OpenID Connect provider (oidc-provider-mock, its own process):
log in through the provider's form, add clients and a mailing through the forms, watch the
mailing reach 100 % against the simulator, cancel another one, log out. Screenshots of each
step are kept in test-artifacts/browser/ (HERALD_ARTIFACTS_DIR)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from herald_devstack.admin import BrokerAdmin, DatabaseAdmin
from herald_devstack.probes import free_port
from herald_devstack.processes import ProcessGroup
from herald_testing.stack import HeraldStack

from .conftest import _stack

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = (
    Path(
        os.environ.get(
            "HERALD_ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "test-artifacts"
        )
    )
    / "browser"
)
OPERATOR = "operator@herald.example"
# Flags these machines need: no sandbox as root, and no background calls to a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[str]:
    """A real OIDC provider, as its own process on 127.0.0.1."""
    port = free_port()
    group = ProcessGroup(log_dir=Path(tempfile.mkdtemp(prefix="herald-oidc-")))
    process = group.start(
        "oidc", [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)], env={}
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        process.wait_http_ok(f"{issuer}/.well-known/openid-configuration", timeout=30)
        stored = httpx.put(
            f"{issuer}/users/{OPERATOR}",
            json={"email": OPERATOR, "email_verified": True, "name": "Olga Operator"},
        )
        assert stored.status_code == 204
        yield issuer
    finally:
        group.terminate_all()


@pytest.fixture(scope="module")
def admin_stack(
    postgres_server: DatabaseAdmin, rabbitmq_server: BrokerAdmin, identity_provider: str
) -> Iterator[HeraldStack]:
    env = {
        "HERALD_OIDC_ISSUER": identity_provider,
        "HERALD_OIDC_CLIENT_ID": "herald-admin",
        "HERALD_OIDC_CLIENT_SECRET": "e2e-client-secret",
        "HERALD_ADMIN_SESSION_SECRET": uuid.uuid4().hex * 2,
        "HERALD_ADMIN_EMAILS": OPERATOR,
        # Plain http on 127.0.0.1: a Secure cookie would never come back.
        "HERALD_ADMIN_COOKIE_SECURE": "false",
    }
    log_dir = Path(tempfile.mkdtemp(prefix="herald-e2e-"))
    yield from _stack(postgres_server, rabbitmq_server, log_dir, 2, env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def local(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def test_an_operator_runs_a_mailing_from_the_browser(
    admin_stack: HeraldStack, browser: Browser, identity_provider: str
) -> None:
    base = f"http://127.0.0.1:{admin_stack.api_port}"
    tag = f"ui-{uuid.uuid4().hex[:8]}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Console errors include what the content security policy blocked.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and page.url.startswith(base)
            else None
        ),
    )

    # Not logged in: every page leads to the login page.
    page.goto(f"{base}/admin/clients")
    expect(page).to_have_url(f"{base}/admin/login?next=%2Fadmin%2Fclients")
    shot(page, "01-login")
    page.click("#login")
    expect(page).to_have_url(re.compile(re.escape(identity_provider) + "/"))
    page.fill("input[name=sub]", OPERATOR)
    shot(page, "02-identity-provider")
    page.locator("button[type=submit], input[type=submit]").first.click()
    expect(page).to_have_url(f"{base}/admin/clients")
    expect(page.locator(".who")).to_contain_text("Olga Operator")

    # Three clients through the form.
    phones = [f"7977{uuid.uuid4().int % 10**7:07d}" for _ in range(3)]
    for phone in phones:
        page.click("text=Add client")
        page.fill("input[name=phone]", phone)
        page.fill("input[name=tag]", tag)
        page.fill("input[name=timezone]", "Europe/Moscow")
        page.click("#client-form button[type=submit]")
        expect(page.locator(".notice")).to_contain_text(f"({phone}) added")
    page.fill("form[role=search] input[name=tag]", tag)
    page.click("form[role=search] button[type=submit]")
    expect(page.locator("#clients tbody tr")).to_have_count(3)
    shot(page, "03-clients")

    # A mailing for them, starting now; the form previews its audience.
    now = datetime.now(UTC)
    page.goto(f"{base}/admin/mailings/new")
    page.fill("input[name=tz]", "UTC")
    page.fill("input[name=starts_at]", local(now - timedelta(minutes=1)))
    page.fill("input[name=ends_at]", local(now + timedelta(hours=1)))
    page.fill("textarea[name=text]", f"Hello from the admin UI ({tag})")
    page.fill("input[name=tags]", tag)
    expect(page.locator("#audience-count")).to_have_text("3")
    shot(page, "04-new-mailing")
    page.click("#mailing-form button[type=submit]")
    expect(page).to_have_url(re.compile(r".*/admin/mailings/\d+$"))
    mailing_id = int(page.url.rsplit("/", 1)[1])

    # The page's own polling shows it reaching 100 %.
    expect(page.locator(".progress-text")).to_have_text("3 / 3 (100.0 %)", timeout=60_000)
    shot(page, "05-mailing-done")
    stats = admin_stack.stats(mailing_id)
    assert stats["by_status"]["sent"] == 3
    texts = [
        r["text"] for r in admin_stack.sim_requests() if r["phone"] in {int(p) for p in phones}
    ]
    assert texts == [f"Hello from the admin UI ({tag})"] * 3
    page.goto(f"{base}/admin/mailings/{mailing_id}?status=sent")
    expect(page.locator("#messages tbody tr")).to_have_count(3)

    # Another mailing, for tomorrow, cancelled from its page.
    page.goto(f"{base}/admin/mailings/new")
    page.fill("input[name=tz]", "UTC")
    page.fill("input[name=starts_at]", local(now + timedelta(days=1)))
    page.fill("input[name=ends_at]", local(now + timedelta(days=2)))
    page.fill("textarea[name=text]", "Never sent")
    page.click("#mailing-form button[type=submit]")
    expect(page.locator("#state")).to_have_text("scheduled")
    cancelled_id = int(page.url.rsplit("/", 1)[1])
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator(".notice")).to_contain_text(f"Mailing {cancelled_id} cancelled")
    assert admin_stack.api.get(f"/mailings/{cancelled_id}").status_code == 404
    shot(page, "06-cancelled")

    # On a phone's screen, with a mailing that stays running (its client's window is closed now):
    # the dashboard, the lists, the mailing's page and the form fit the width.
    waiting_phone = f"7978{uuid.uuid4().int % 10**7:07d}"
    created = admin_stack.api.post(
        "/clients",
        json={"phone": waiting_phone, "tag": f"{tag}-later", "timezone": "UTC"},
    )
    assert created.status_code == 201, created.text
    window_opens = now + timedelta(hours=3)
    running = admin_stack.api.post(
        "/mailings",
        json={
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(),
            "text": "Waits for its window " + "and says so at some length " * 4,
            "filter": {"operator_codes": [], "tags": [f"{tag}-later"]},
            "send_window": {
                "start": window_opens.strftime("%H:%M"),
                "end": (window_opens + timedelta(hours=1)).strftime("%H:%M"),
            },
        },
    )
    assert running.status_code == 201, running.text
    running_id = running.json()["id"]
    phone_view = context.new_page()
    phone_view.set_viewport_size({"width": 390, "height": 844})
    for path, shown, name in [
        ("/admin/", f"tr[data-mailing='{running_id}']", "07-dashboard-phone"),
        ("/admin/mailings", f"tr[data-mailing='{running_id}']", "08-mailings-phone"),
        (f"/admin/mailings/{running_id}", "#state", "09-mailing-phone"),
        ("/admin/clients", "#clients", "10-clients-phone"),
        ("/admin/mailings/new", "#mailing-form", "11-new-mailing-phone"),
    ]:
        phone_view.goto(base + path)
        expect(phone_view.locator(shown).first).to_be_visible()
        if shown == "#state":
            expect(phone_view.locator(shown)).to_have_text("running")
        shot(phone_view, name)
        width = phone_view.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px screen"
    phone_view.close()
    assert admin_stack.api.delete(f"/mailings/{running_id}").status_code == 204

    # Logging out ends the session.
    page.click(".who button")
    expect(page).to_have_url(f"{base}/admin/login")
    page.goto(f"{base}/admin/")
    expect(page).to_have_url(f"{base}/admin/login?next=%2Fadmin%2F")
    assert errors == []
    context.close()
