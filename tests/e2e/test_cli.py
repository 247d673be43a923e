"""The `herald` command line against the real API, senders and simulator, run as a user runs
it: a separate process, reading HERALD_API_URL / HERALD_API_TOKEN, judged by its exit code,
its stdout and its stderr (a progress bar when Rich is told stderr is a terminal)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from herald_testing.stack import API_TOKEN, HeraldStack

pytestmark = pytest.mark.e2e

# Rich 14+ reads these: a terminal it may draw on (TTY_COMPATIBLE), redrawn in place
# (TTY_INTERACTIVE), this wide, and no colour codes to split the text we look for.
TERMINAL = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "160", "NO_COLOR": "1"}
PIPE = {"TTY_COMPATIBLE": "0", "TTY_INTERACTIVE": "0"}


def herald(
    stack: HeraldStack,
    *args: str,
    terminal: bool = False,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    # Nothing of the runner's terminal either: TERM=dumb (some CI runners) makes Rich draw 80
    # columns wide whatever COLUMNS says, so what the tests read would depend on who runs them.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HERALD_", "FORCE_COLOR", "TERM", "COLUMNS"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "herald_cli", *args],
        env={
            **base,
            "HERALD_API_URL": f"http://127.0.0.1:{stack.api_port}",
            "HERALD_API_TOKEN": API_TOKEN,
            "PYTHONIOENCODING": "utf-8",
            **(TERMINAL if terminal else PIPE),
            **env,
        },
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def loads(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the Rich tables in ``text``."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if "│" in line]


def write_csv(path: Path, first_phone: int, count: int, tag: str) -> Path:
    zones = ("Europe/Moscow", "UTC", "Asia/Vladivostok")
    rows = (f"{first_phone + i},{zones[i % 3]},{tag}" for i in range(count))
    path.write_text("phone,timezone,tag\n" + "\n".join(rows) + "\n")
    return path


def test_a_generated_csv_is_imported_with_a_progress_bar_then_skipped_on_repeat(
    stack: HeraldStack, tmp_path: Path
) -> None:
    csv_file = write_csv(tmp_path / "clients.csv", 79_500_000_000, 4000, "cli-import")

    first = herald(stack, "clients", "import", str(csv_file), terminal=True)

    assert first.returncode == 0, first.stderr
    assert f"imported {csv_file}: 4000 rows, 4000 created, 0 updated, 0 skipped" in first.stdout
    assert "uploading clients.csv" in first.stderr
    assert "100%" in first.stderr
    listed = loads(herald(stack, "clients", "list", "--tag", "cli-import", "--all", "--json"))
    assert len(listed["items"]) == 4000
    assert {c["timezone"] for c in listed["items"]} == {"Europe/Moscow", "UTC", "Asia/Vladivostok"}

    # In a pipe: no progress bar, only the result, here as JSON for a script.
    again = herald(stack, "clients", "import", str(csv_file), "--on-duplicate", "skip", "--json")
    assert loads(again) == {"created": 0, "updated": 0, "skipped": 4000, "total": 4000}
    assert again.stderr == ""


def test_ndjson_from_standard_input_needs_its_format(stack: HeraldStack) -> None:
    ndjson = '{"phone": "79510000001", "timezone": "UTC", "tag": "cli-ndjson"}\n'

    unknown = herald(stack, "clients", "import", "-", stdin=ndjson)
    assert unknown.returncode == 2
    assert "--format" in unknown.stderr

    imported = herald(stack, "clients", "import", "-", "--format", "ndjson", "--json", stdin=ndjson)
    assert loads(imported)["created"] == 1


def test_an_import_with_bad_rows_is_refused_by_line_and_field_and_writes_nothing(
    stack: HeraldStack, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "phone,timezone,tag\n"
        "79520000001,UTC,cli-bad\n"
        "7952000000,UTC,cli-bad\n"  # ten digits
        "79520000003,Mars/Olympus,cli-bad\n"
        "79520000001,UTC,cli-bad\n"  # the phone of line 2 again
    )

    result = herald(stack, "clients", "import", str(bad))

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: the API refused the request (422 invalid_rows): 3 errors")
    assert any(line.startswith("  line 3, phone: ") for line in lines)
    assert any(line.startswith("  line 4, timezone: unknown IANA time zone") for line in lines)
    assert "  line 5, phone: 79520000001 is also on line 2" in lines
    assert result.stdout == ""
    assert loads(herald(stack, "clients", "list", "--tag", "cli-bad", "--json"))["items"] == []


def test_clients_are_added_read_changed_listed_and_deleted(stack: HeraldStack) -> None:
    added = loads(
        herald(
            stack, "clients", "add", "--phone", "79530000001", "--timezone", "Europe/Moscow",
            "--tag", "cli-crud", "--json",
        )
    )  # fmt: skip
    client_id = str(added["id"])
    assert added["operator_code"] == "953"

    table = herald(stack, "clients", "get", client_id)
    assert table.returncode == 0
    assert "79530000001" in table.stdout
    assert "Europe/Moscow" in table.stdout

    edited = loads(herald(stack, "clients", "edit", client_id, "--tag", "cli-crud-2", "--json"))
    assert (edited["tag"], edited["timezone"]) == ("cli-crud-2", "Europe/Moscow")
    listed = loads(herald(stack, "clients", "list", "--tag", "cli-crud-2", "--json"))
    assert [c["id"] for c in listed["items"]] == [added["id"]]

    duplicate = herald(stack, "clients", "add", "--phone", "79530000001", "--timezone", "UTC")
    assert duplicate.returncode == 1
    assert "409 duplicate_phone" in duplicate.stderr

    invalid = herald(stack, "clients", "add", "--phone", "7953", "--timezone", "Nowhere/City")
    assert invalid.returncode == 1
    assert "  phone: String should match pattern" in invalid.stderr
    assert "  timezone: Value error, unknown IANA time zone" in invalid.stderr

    deleted = herald(stack, "clients", "delete", client_id)
    assert (deleted.returncode, deleted.stdout.strip()) == (0, f"client {client_id} deleted")
    gone = herald(stack, "clients", "get", client_id)
    assert gone.returncode == 3
    assert gone.stderr.startswith("error: not found (404 not_found)")


def test_a_wrong_token_or_an_absent_api_each_have_their_exit_code(
    stack: HeraldStack, tmp_path: Path
) -> None:
    refused = herald(stack, "stats", HERALD_API_TOKEN="wrong")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "HERALD_API_TOKEN" in refused.stderr

    # No token set: the one `make run` keeps in .herald/api-token, found from a subfolder.
    (tmp_path / ".herald").mkdir()
    (tmp_path / ".herald" / "api-token").write_text(API_TOKEN + "\n")
    (tmp_path / "sub").mkdir()
    from_file = herald(stack, "stats", "--json", cwd=tmp_path / "sub", HERALD_API_TOKEN="")
    assert "totals" in loads(from_file)

    unreachable = herald(stack, "--api-url", "http://127.0.0.1:9", "stats")
    assert unreachable.returncode == 4
    assert "cannot reach the API at http://127.0.0.1:9/api/v1" in unreachable.stderr


def test_a_mailing_from_flags_is_paused_resumed_listed_and_deleted(stack: HeraldStack) -> None:
    created = loads(
        herald(
            stack, "mailings", "create", "--starts-at", "+1h", "--ends-at", "+2h",
            "--text", "Later", "--tag", "cli-pause", "--operator-code", "953",
            "--window", "22:00-06:00", "--json",
        )
    )  # fmt: skip
    mailing_id = str(created["id"])
    assert created["state"] == "scheduled"
    assert created["filter"] == {"operator_codes": ["953"], "tags": ["cli-pause"]}
    assert created["send_window"] == {"start": "22:00", "end": "06:00"}

    paused = loads(herald(stack, "mailings", "pause", mailing_id, "--json"))
    assert paused["state"] == "paused"
    in_list = loads(herald(stack, "mailings", "list", "--state", "paused", "--json"))
    assert created["id"] in [m["id"] for m in in_list["items"]]
    resumed = loads(herald(stack, "mailings", "resume", mailing_id, "--json"))
    assert resumed["state"] == "scheduled"

    shown = loads(herald(stack, "mailings", "show", mailing_id, "--json"))
    assert (shown["text"], shown["stats"]["total"]) == ("Later", 0)

    assert herald(stack, "mailings", "delete", mailing_id).returncode == 0
    assert herald(stack, "mailings", "show", mailing_id).returncode == 3
    assert herald(stack, "mailings", "pause", mailing_id).returncode == 3


def test_a_mailing_the_api_refuses_names_the_field(stack: HeraldStack) -> None:
    refused = herald(
        stack, "mailings", "create", "--starts-at", "+2h", "--ends-at", "+1h", "--text", "x"
    )

    assert refused.returncode == 1
    assert "  ends_at: Value error, ends_at must be later than starts_at" in refused.stderr

    usage = herald(stack, "mailings", "create", "--ends-at", "+1h", "--text", "x", "--window", "9")
    assert usage.returncode == 2
    assert "HH:MM-HH:MM" in usage.stderr


def test_a_mailing_from_a_yaml_file_keeps_its_times_window_and_filter(
    stack: HeraldStack, tmp_path: Path
) -> None:
    spec = tmp_path / "spring.yaml"
    spec.write_text(
        "# unquoted, as people write YAML\n"
        "starts_at: 2031-03-01T09:00:00+03:00\n"
        "ends_at: 2031-03-01T21:00:00+03:00\n"
        "text: Spring sale\n"
        "filter:\n"
        "  tags: [cli-yaml, vip]\n"
        "send_window: {start: 09:00, end: 21:00}\n"
    )

    created = loads(herald(stack, "mailings", "create", "--file", str(spec), "--json"))

    assert created["starts_at"] == "2031-03-01T06:00:00Z"
    assert created["ends_at"] == "2031-03-01T18:00:00Z"
    assert created["filter"] == {"operator_codes": [], "tags": ["cli-yaml", "vip"]}
    assert created["send_window"] == {"start": "09:00", "end": "21:00"}

    # A flag overrides the file's field.
    other = loads(herald(stack, "mailings", "create", "-f", str(spec), "--text", "Other", "--json"))
    assert (other["text"], other["filter"]) == ("Other", created["filter"])
    for mailing in (created, other):
        assert herald(stack, "mailings", "delete", str(mailing["id"])).returncode == 0


def test_watch_follows_a_mailing_to_100_percent_and_prints_the_apis_final_counts(
    slow_stack: HeraldStack, tmp_path: Path
) -> None:
    # Ten provider slots at 100 ms a call: some 100 messages a second, a few seconds in all.
    stack = slow_stack
    csv_file = write_csv(tmp_path / "watched.csv", 79_540_000_000, 500, "cli-watch")
    assert herald(stack, "clients", "import", str(csv_file)).returncode == 0
    stack.faults(latency_ms=100)
    created = loads(
        herald(
            stack, "mailings", "create", "--ends-at", "+10m", "--text", "Watched",
            "--tag", "cli-watch", "--json",
        )
    )  # fmt: skip
    mailing_id = str(created["id"])

    watched = herald(
        stack, "mailings", "watch", mailing_id, "--interval", "0.3", "--timeout", "120",
        "--json", terminal=True,
    )  # fmt: skip

    final = loads(watched)
    api = stack.stats(created["id"])
    assert final["state"] == api["state"] == "finished"
    assert final["by_status"] == api["by_status"]
    assert final["by_status"]["sent"] == final["total"] == 500
    percents = [float(p) for p in re.findall(r"([0-9]+\.[0-9])%", watched.stderr)]
    assert any(0 < p < 100 for p in percents), "the bar moved while the mailing ran"
    assert percents[-1] == 100.0
    assert f"mailing {mailing_id} running" in watched.stderr
    assert f"mailing {mailing_id} finished" in watched.stderr
    assert "500/500" in watched.stderr
    assert "msg/s" in watched.stderr

    # Already settled: the counts at once, as a table.
    table = herald(stack, "mailings", "watch", mailing_id)
    assert table.returncode == 0
    assert table.stderr == ""
    rows = dict(table_rows(table.stdout))
    assert (rows["sent"], rows["failed"], rows["total"]) == ("500", "0", "500")

    # Nothing failed, so nothing to retry (before the end, this is allowed).
    retried = herald(stack, "mailings", "retry-failed", mailing_id)
    assert retried.stdout.strip() == f"mailing {mailing_id}: 0 failed message(s) requeued"

    stats = loads(herald(stack, "stats", "--json"))
    assert stats == stack.api.get("/mailings/stats").json()
    overview = herald(stack, "stats")
    assert [mailing_id, "finished", "500", "0", "0", "0", "0", "500"] in table_rows(overview.stdout)


def test_watch_gives_up_after_its_timeout_with_exit_5(stack: HeraldStack) -> None:
    created = loads(
        herald(stack, "mailings", "create", "--starts-at", "+1h", "--ends-at", "+2h",
               "--text", "Not yet", "--json")
    )  # fmt: skip

    result = herald(
        stack, "mailings", "watch", str(created["id"]), "--interval", "0.2", "--timeout", "1"
    )

    assert result.returncode == 5
    assert "not settled after 1 s: 0 of 0 messages done, state scheduled" in result.stderr
    assert herald(stack, "mailings", "watch", "999999").returncode == 3
