"""Typed clients generated from the live /openapi.json, as an integrator would make them, run
the README's tour against Herald as real processes: openapi-python-client (no warning allowed)
and openapi-generator's python client (Java; only the two warnings it prints for any 3.1
document with schemas)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from herald_testing.stack import API_TOKEN, HeraldStack, wait_until

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
# What openapi-generator 7.26 says of every OpenAPI 3.1 document that has component schemas,
# whatever they are (checked on a one-schema document); any other warning fails the test.
GENERATOR_NOISE = (
    "OpenAPI 3.1 support is still in beta",
    "Failed to get the schema name: null",
)


@pytest.fixture(scope="module")
def spec_file(shared_stack: HeraldStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = tmp_path_factory.mktemp("openapi") / "openapi.json"
    response = httpx.get(f"http://127.0.0.1:{shared_stack.api_port}/openapi.json", timeout=10)
    response.raise_for_status()
    spec.write_bytes(response.content)
    return spec


@pytest.fixture
def importable(tmp_path: Path) -> Iterator[Path]:
    """A directory on sys.path for the generated package; each gets a name of its own."""
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def phones(count: int) -> list[str]:
    base = 79_100_000_000 + uuid.uuid4().int % 800_000_000
    return [str(base + index) for index in range(count)]


def test_openapi_python_client_generates_every_operation_and_runs_the_tour(
    shared_stack: HeraldStack, spec_file: Path, importable: Path
) -> None:
    name = f"herald_client_{uuid.uuid4().hex[:8]}"
    config = importable / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: the output is what is checked

    output = run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(spec_file),
            "--meta",
            "none",
            "--output-path",
            str(importable / name),
            "--config",
            str(config),
        ],
        importable,
    )

    assert "warning" not in output.lower(), output
    client_module = importlib.import_module(f"{name}.client")
    api = importlib.import_module(f"{name}.api")
    models = importlib.import_module(f"{name}.models")
    types = importlib.import_module(f"{name}.types")
    call = _Calls(api)
    tag = f"gen-{uuid.uuid4().hex[:8]}"
    base_url = f"http://127.0.0.1:{shared_stack.api_port}"

    with client_module.AuthenticatedClient(base_url=base_url, token=API_TOKEN) as client:
        # 1. A few clients, one at a time, then two more in bulk (CSV)
        for phone in phones(3):
            created = call.clients.create_client.sync(
                client=client,
                body=models.ClientCreate(phone=phone, tag=tag, timezone="Europe/Moscow"),
            )
            assert isinstance(created, models.ClientRead), created
            assert created.operator_code == phone[1:4]
        changed = call.clients.update_client.sync(
            created.id, client=client, body=models.ClientUpdate(timezone="Asia/Vladivostok")
        )
        assert isinstance(changed, models.ClientRead), changed
        assert (changed.tag, changed.timezone) == (tag, "Asia/Vladivostok")
        csv = "phone,tag,timezone\n" + "".join(f"{p},{tag},UTC\n" for p in phones(2))
        imported = call.clients.import_clients.sync(
            client=client,
            body=types.File(payload=BytesIO(csv.encode()), file_name="clients.csv"),
            on_duplicate=models.OnDuplicate.UPDATE,
        )
        assert isinstance(imported, models.ClientImportResult), imported
        assert (imported.created, imported.total) == (2, 2)

        # 2. A mailing that starts now, for the tag
        now = datetime.now(UTC)
        mailing = call.mailings.create_mailing.sync(
            client=client,
            body=models.MailingCreate(
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                text="Hello from a generated client",
                filter_=models.MailingFilter(tags=[tag]),
            ),
        )
        assert isinstance(mailing, models.MailingRead), mailing

        # 3. Its statistics, until every message is sent, and the overall ones
        def all_sent() -> Any:
            stats = call.mailings.get_mailing_stats.sync(mailing.id, client=client)
            assert isinstance(stats, models.MailingDetailStats), stats
            return stats if stats.by_status["sent"] == 5 else None

        stats = wait_until(all_sent, timeout=60, what="5 messages sent")
        assert stats.total == 5
        overall = call.mailings.get_all_mailing_stats.sync(client=client)
        assert isinstance(overall, models.AllMailingStats), overall
        assert mailing.id in {m.id for m in overall.mailings}
        assert overall.totals.by_status["sent"] >= 5

        # 4. Its messages, sent ones, two at a time
        seen: list[int] = []
        after = 0
        while True:
            page = call.mailings.list_mailing_messages.sync(
                mailing.id,
                client=client,
                status=models.MessageStatus.SENT,
                limit=2,
                after=after,
            )
            assert isinstance(page, models.MessagePage), page
            assert len(page.items) <= 2
            assert {m.status for m in page.items} <= {"sent"}
            seen += [m.id for m in page.items]
            if not isinstance(page.next_after, int):
                break
            after = page.next_after
        assert len(seen) == len(set(seen)) == 5

        # 5. Pause, resume, re-send the failed (none)
        paused = call.mailings.pause_mailing.sync(mailing.id, client=client)
        assert isinstance(paused, models.MailingRead), paused
        assert paused.state == models.MailingState.PAUSED
        resumed = call.mailings.resume_mailing.sync(mailing.id, client=client)
        assert isinstance(resumed, models.MailingRead), resumed
        assert resumed.state != models.MailingState.PAUSED
        retried = call.mailings.retry_failed_messages.sync(mailing.id, client=client)
        assert isinstance(retried, models.RetryFailedResult), retried
        assert retried.requeued == 0

        # A refusal comes back typed: the 422 names the field.
        refused = call.clients.create_client.sync(
            client=client, body=models.ClientCreate(phone="7900", timezone="UTC")
        )
        assert isinstance(refused, models.ValidationErrorBody), refused
        assert refused.detail[0].loc == ["body", "phone"]


def test_openapi_generator_generates_a_python_client_that_runs_the_tour(
    shared_stack: HeraldStack, spec_file: Path, importable: Path
) -> None:
    if shutil.which("java") is None:
        message = "openapi-generator needs Java (default-jre-headless)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have it (make test installs it)", pytrace=False)
        pytest.skip(message)
    name = f"herald_ogen_{uuid.uuid4().hex[:8]}"

    output = run(
        [
            str(BIN / "openapi-generator-cli"),
            "generate",
            "--input-spec",
            str(spec_file),
            "--generator-name",
            "python",
            "--output",
            str(importable),
            "--package-name",
            name,
            "--global-property",
            "apiTests=false,modelTests=false,apiDocs=false,modelDocs=false",
        ],
        importable,
    )

    warnings = [line for line in output.splitlines() if "WARN" in line or "ERROR" in line]
    assert [w for w in warnings if not any(n in w for n in GENERATOR_NOISE)] == [], output
    package = importlib.import_module(name)
    tag = f"ogen-{uuid.uuid4().hex[:8]}"
    configuration = package.Configuration(
        host=f"http://127.0.0.1:{shared_stack.api_port}", access_token=API_TOKEN
    )

    with package.ApiClient(configuration) as api_client:
        clients = package.ClientsApi(api_client)
        mailings = package.MailingsApi(api_client)
        created = clients.create_client(
            package.ClientCreate(phone=phones(1)[0], tag=tag, timezone="Europe/Moscow")
        )
        csv = "phone,tag,timezone\n" + "".join(f"{p},{tag},UTC\n" for p in phones(2))
        imported = clients.import_clients(csv.encode(), on_duplicate=package.OnDuplicate.UPDATE)
        assert (imported.created, imported.total) == (2, 2)
        now = datetime.now(UTC)
        mailing = mailings.create_mailing(
            package.MailingCreate(
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                text="Hello from openapi-generator",
                filter=package.MailingFilter(tags=[tag]),
            )
        )

        def all_sent() -> Any:
            stats = mailings.get_mailing_stats(mailing.id)
            return stats if stats.by_status["sent"] == 3 else None

        assert wait_until(all_sent, timeout=60, what="3 messages sent").total == 3
        page = mailings.list_mailing_messages(
            mailing.id, status=package.MessageStatus.SENT, limit=10
        )
        assert len(page.items) == 3
        assert created.id in {m.client_id for m in page.items}
        assert mailing.id in {m.id for m in mailings.get_all_mailing_stats().mailings}


class _Calls:
    """``call.clients.create_client`` for ``<package>.api.clients.create_client``."""

    def __init__(self, api: ModuleType) -> None:
        self._api = api

    def __getattr__(self, tag: str) -> Any:
        api = self._api

        class Tag:
            def __getattr__(self, operation: str) -> ModuleType:
                return importlib.import_module(f"{api.__name__}.{tag}.{operation}")

        return Tag()
