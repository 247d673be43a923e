"""The REST API fuzzed against its own OpenAPI document, as a real process on real services.

Schemathesis reads ``/openapi.json`` from the running API and sends documented and malformed
requests to every operation (examples, coverage, fuzzing and stateful phases: a created client
or mailing is then fetched, patched and deleted through the documented links). Every check is
on: no 5xx, responses match the documented schemas, status codes and content types, malformed
input is refused, well-formed input is accepted. ``make test`` runs a bounded pass;
``make fuzz`` runs a longer one (``HERALD_FUZZ_SECONDS``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from herald_testing.stack import API_TOKEN, HeraldStack

pytestmark = pytest.mark.e2e

FUZZ_SECONDS = int(os.environ.get("HERALD_FUZZ_SECONDS", "45"))
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
# Checks whose premise this API does not share:
# - positive_data_acceptance ("a request valid by the document is accepted"): JSON Schema has
#   no way to say that ends_at must follow starts_at, that a time zone must be one of the
#   IANA names, or that an imported file needs a header row. Those refusals are 422s naming
#   the field; the service tests check each of them.
# - ensure_resource_availability ("what was just created can be fetched"): a create retried
#   with its Idempotency-Key replays the first answer, also when that client or mailing has
#   been deleted since, and the fuzzer reuses header values across its sequences.
#   services/api/tests/test_idempotency.py pins the replay down.
EXCLUDED_CHECKS = "positive_data_acceptance,ensure_resource_availability"


def st_command() -> list[str]:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a dev dependency: uv sync"
    return [st]


# The suite's 300 s per-test limit would cut `make fuzz`'s longer runs short.
@pytest.mark.timeout(FUZZ_SECONDS + 300)
def test_every_operation_survives_schemathesis(shared_stack: HeraldStack, tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{shared_stack.api_port}"
    report = tmp_path / "schemathesis"
    command = [
        *st_command(),
        "run",
        f"{api}/openapi.json",
        "--header",
        f"Authorization: Bearer {API_TOKEN}",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-time",
        str(FUZZ_SECONDS),
        "--max-examples",
        "30",
        "--request-timeout",
        "10",
        # One worker: with two, hypothesis's source inspection calls ast.parse from two threads
        # at once, and CPython 3.11's AST builder keeps its recursion depth per interpreter,
        # not per thread, so the run dies now and then with "AST constructor recursion depth
        # mismatch" (python/cpython#106905), which schemathesis counts as an error.
        "--workers",
        "1",
        "--seed",
        os.environ.get("HERALD_FUZZ_SEED", "20261202"),
        "--report",
        "junit",
        "--report-dir",
        str(report),
        "--generation-database",
        "none",
        "--no-color",
    ]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 240,
        check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20_000:]
    # It really exercised the API: every operation of the document was tested.
    assert "No operations" not in output
