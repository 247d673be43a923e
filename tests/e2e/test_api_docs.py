"""The API's reference pages in a real headless Chromium with the network closed: Swagger UI at
/docs/ and ReDoc at /redoc/ draw every operation of /openapi.json from Herald's own origin.

Every request to anything but 127.0.0.1 is refused and recorded, and so is anything the
browser reports (a script error, a request the page's policy refused): a page that needs a
CDN, or runs an inline script, fails here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    sync_playwright,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from herald_testing.stack import HeraldStack

from .test_admin_ui import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e

# Beside the admin UI's screenshots, which that module clears when it starts.
SCREENSHOTS = ARTIFACTS.parent / "docs"

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operations(base: str) -> list[tuple[str, str, str, str]]:
    """(tag, operationId, METHOD, path) of every operation of the live document."""
    spec: dict[str, Any] = httpx.get(f"{base}/openapi.json", timeout=10).json()
    found = [
        (operation["tags"][0], operation["operationId"], method.upper(), path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert len(found) >= 19, found  # the contract's paths and the mailing controls at least
    return found


class ClosedNetwork:
    """A browser context that reaches 127.0.0.1 only, and keeps what else was attempted and
    every error the pages reported."""

    def __init__(self, browser: Browser) -> None:
        self.context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort("internetdisconnected")

    def wait_drawn(self, page: Page, selector: str) -> None:
        """Until ``selector`` shows; if it never does, fail with what the page lacked."""
        try:
            page.locator(selector).first.wait_for()
        except PlaywrightTimeoutError:
            pytest.fail(f"{selector} never drawn; refused: {self.refused}, errors: {self.errors}")

    def page(self) -> Page:
        page = self.context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

        def console(message: ConsoleMessage) -> None:
            # A request refused by the page's content security policy is reported here.
            if message.type == "error":
                self.errors.append(f"console: {message.text}")

        page.on("console", console)
        return page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


@pytest.fixture
def offline(browser: Browser) -> Iterator[ClosedNetwork]:
    network = ClosedNetwork(browser)
    yield network
    network.context.close()


def test_swagger_ui_draws_every_operation_with_the_network_closed(
    shared_stack: HeraldStack, offline: ClosedNetwork
) -> None:
    base = f"http://127.0.0.1:{shared_stack.api_port}"
    expected = operations(base)
    page = offline.page()

    response = page.goto(f"{base}/docs/")
    assert response is not None
    assert response.status == 200
    offline.wait_drawn(page, ".opblock")
    shot(page, "docs-swagger-ui")

    drawn = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.id,
            b.querySelector('.opblock-summary-method').textContent.trim(),
            b.querySelector('.opblock-summary-path').dataset.path,
        ])""",
    )
    # Swagger UI names each block operations-<tag>-<operationId>.
    assert sorted(map(tuple, drawn)) == sorted(
        (f"operations-{tag}-{operation_id}", method, path)
        for tag, operation_id, method, path in expected
    )
    assert offline.refused == []
    assert offline.errors == []


def test_redoc_draws_every_operation_with_the_network_closed(
    shared_stack: HeraldStack, offline: ClosedNetwork
) -> None:
    base = f"http://127.0.0.1:{shared_stack.api_port}"
    expected = operations(base)
    page = offline.page()

    response = page.goto(f"{base}/redoc/")
    assert response is not None
    assert response.status == 200
    offline.wait_drawn(page, "[data-section-id^='operation/']")
    shot(page, "docs-redoc")

    drawn = dict(
        page.eval_on_selector_all(
            "[data-section-id^='operation/']",
            "sections => sections.map(s => [s.dataset.sectionId, s.innerText])",
        )
    )
    assert sorted(drawn) == sorted(f"operation/{operation_id}" for _, operation_id, *_ in expected)
    for _, operation_id, method, path in expected:
        # Each section shows its method and path (ReDoc's request box).
        assert f"{method}\n{path}" in drawn[f"operation/{operation_id}"], operation_id
    assert offline.refused == []
    assert offline.errors == []
