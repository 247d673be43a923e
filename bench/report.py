"""The results table (with targets), the CPU-share summary, and docs/performance.md."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import KERNEL, OUTSIDE
from bench.phases import Results, env_summary, outside_load

BEGIN = "<!-- bench:begin (everything down to bench:end is rewritten by `make bench`) -->"
END = "<!-- bench:end -->"
CATEGORIES = (
    "simulator",
    "sender-1",
    "sender-2",
    "postgres",
    "rabbitmq",
    "api",
    "scheduler",
    "ceiling client",
    "crud client",
    "harness",
    KERNEL,
    OUTSIDE,
)
PHASES = (
    "clients: import",
    "a: fan-out",
    "d: stats latency",
    "c: ceiling 0 ms",
    "b: delivery 0 ms",
    "c: ceiling 100 ms",
    "b: delivery 100 ms",
)
OUTSIDE_LOAD_CORES = 0.15


@dataclass(frozen=True)
class Row:
    measurement: str
    result: str
    target: str = "—"
    met: bool | None = None

    @property
    def mark(self) -> str:
        return "" if self.met is None else ("✓" if self.met else "✗")


def _n(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _rate(steady: dict[str, Any] | None) -> float | None:
    return None if steady is None else float(steady["rate"])


def rows(results: Results) -> list[Row]:
    out: list[Row] = []
    sizes = results.sizes
    clients = sizes["clients"]
    scale = clients / 1_000_000
    imp = results.clients
    if "seconds" in imp and not imp.get("import_failed"):
        out.append(
            Row(
                f"Bulk import of {clients:,} clients (CSV, `POST /clients/import`)",
                f"{imp['seconds']:.1f} s, {_n(imp['rows_per_s'])} rows/s",
            )
        )
    elif sizes.get("import_clients"):
        reason = imp.get("import_error") or f"HTTP {imp.get('status')}"
        out.append(
            Row(
                f"Bulk import of {clients:,} clients",
                f"failed ({reason}); clients inserted by SQL instead",
            )
        )

    fan = results.fanout
    target_s = 30 * scale
    if fan:
        logged = fan.get("log_fanout_done_s")
        result = (
            f"{fan['seconds']:.1f} s, {_n(fan.get('messages_per_s'))} msg/s"
            + (f" (`fanout_done` logged at {logged:.1f} s)" if logged is not None else "")
            + ("" if fan.get("complete") else f" — INCOMPLETE: {fan.get('last_state')}")
        )
        out.append(
            Row(
                f"(a) Fan-out of {clients:,} messages, no sender running "
                "(POST → outbox empty, all messages, `fanout_done_at`, all jobs queued)",
                result,
                f"≤ {_n(target_s, 0 if scale >= 1 else 1)} s" + ("" if scale == 1 else " (scaled)"),
                bool(fan.get("complete")) and fan["seconds"] <= target_s,
            )
        )

    for latency, target in (("0", 2000), ("100", 1500)):
        run = results.delivery.get(latency)
        ceiling = results.ceiling.get(latency)
        if run:
            sent, sim = _rate(run["sent_steady"]), _rate(run["sim_steady"])
            partial = any(run[k] and run[k]["partial"] for k in ("sent_steady", "sim_steady"))
            result = (
                f"`sent` {_n(sent)}/s, at the simulator {_n(sim)}/s; "
                f"wall {_n(run['wall_s'], 1)} s ({_n(run['overall_per_s'])}/s overall)"
            )
            if not run["settled"]:
                result += f" — NOT SETTLED in time: {run['by_status']}"
            elif run["by_status"].get("sent") != run["messages"]:
                result += f" — by status {run['by_status']}"
            if partial:
                result += " (rate up to the last sample: 90 % not reached)"
            met = sent is not None and sim is not None and min(sent, sim) >= target
            out.append(
                Row(
                    f"(b) Delivery, 2 senders, {latency} ms provider latency, "
                    f"{run['messages']:,} messages (steady 10–90 %)"
                    + (", (e) running meanwhile" if run.get("with_crud") else ""),
                    result,
                    f"≥ {target:,}/s",
                    met,
                )
            )
        if ceiling:
            out.append(
                Row(
                    f"(c) Ceiling at {latency} ms: one process, sender's aiohttp client "
                    f"on {ceiling.get('loop', 'asyncio')}, "
                    f"{ceiling['concurrency']} in flight, {ceiling['seconds']:g} s",
                    f"{_n(ceiling['requests_per_s'])} req/s "
                    f"(p50 {ceiling['latency_ms']['p50']:.1f} ms, "
                    f"p99 {ceiling['latency_ms']['p99']:.1f} ms)",
                )
            )
        if run and ceiling:
            sent = _rate(run["sent_steady"])
            ratio = sent / ceiling["requests_per_s"] if sent and ceiling["requests_per_s"] else None
            out.append(
                Row(
                    f"(b)/(c) Pipeline / ceiling at {latency} ms",
                    _n(ratio, 2),
                    "≥ 0.5",
                    ratio is not None and ratio >= 0.5,
                )
            )

    stats = results.stats
    for name, label in (
        ("mailing stats", "`GET /mailings/{id}/stats`"),
        ("all stats", "`GET /mailings/stats`"),
    ):
        if name in stats:
            lat = stats[name]
            out.append(
                Row(
                    f"(d) {label}, {lat['count']} sequential, "
                    f"{stats['total_shown']:,} messages present",
                    f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms"
                    + (f", {lat['errors']} errors" if lat["errors"] else ""),
                    "p99 ≤ 100 ms",
                    lat["p99"] <= 100 and not lat["errors"],
                )
            )

    crud = results.crud
    if crud:
        overall = crud["by_operation"]["overall"]
        pace = f", paced at {crud['rate_per_s']:g}/s" if crud.get("rate_per_s") else ""
        out.append(
            Row(
                f"(e) CRUD during the 0 ms delivery, overall ({crud['requests']} requests{pace})",
                f"p50 {overall['p50']:.1f} ms, p99 {overall['p99']:.1f} ms"
                + (f", {overall['errors']} errors" if overall["errors"] else ""),
                "p99 ≤ 50 ms",
                overall["p99"] <= 50 and not overall["errors"],
            )
        )
        for op, lat in crud["by_operation"].items():
            if op == "from schedule":
                out.append(
                    Row(
                        "(e) … all, timed from each one's scheduled start (one connection, so "
                        "a slow answer also delays the requests due meanwhile)",
                        f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms",
                    )
                )
            elif op != "overall":
                out.append(
                    Row(
                        f"(e) … {op}",
                        f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms"
                        + (f", {lat['errors']} errors" if lat["errors"] else ""),
                    )
                )

    for name, value in results.rss_mb.items():
        if name.endswith(" is"):
            continue
        sender = name.startswith("sender")
        out.append(
            Row(
                f"(f) Peak RSS (VmHWM) of {name}",
                f"{_n(value)} MB" if value is not None else "n/a",
                "≤ 200 MB" if sender else "—",
                (value is not None and value <= 200) if sender else None,
            )
        )
    return out


def results_table(table: list[Row]) -> str:
    lines = ["| measurement | result | target | met |", "|---|---|---|:-:|"]
    lines += [f"| {r.measurement} | {r.result} | {r.target} | {r.mark} |" for r in table]
    return "\n".join(lines)


def cpu_table(results: Results) -> str:
    phases = {p["name"]: p for p in results.cpu}
    shown = [name for name in PHASES if name in phases]
    used = [
        cat
        for cat in CATEGORIES
        if any(phases[name]["cores"].get(cat, 0.0) >= 0.01 for name in shown)
    ]
    header = (
        "| phase | s | " + " | ".join(used) + " | machine busy | iowait | steal | busiest 1 s |"
    )
    lines = [header, "|---|--:|" + "--:|" * (len(used) + 4)]
    for name in shown:
        phase = phases[name]
        cells = [f"{phase['cores'].get(cat, 0.0):.2f}" for cat in used]
        lines.append(
            f"| {name} | {phase['seconds']:.0f} | "
            + " | ".join(cells)
            + f" | {phase['machine_busy'] * 100:.0f} % | {phase['machine_iowait'] * 100:.0f} %"
            f" | {phase.get('machine_steal', 0.0) * 100:.0f} %"
            f" | {phase['peak_busy'] * 100:.0f} % |"
        )
    return "\n".join(lines)


def cpu_notes(results: Results, table: list[Row]) -> list[str]:
    """For every missed target, what the CPU did during that phase."""
    phases = {p["name"]: p for p in results.cpu}
    notes = []
    for row in table:
        if row.met is not False:
            continue
        phase_name = None
        if row.measurement.startswith("(a)"):
            phase_name = "a: fan-out"
        elif row.measurement.startswith("(d)"):
            phase_name = "d: stats latency"
        elif row.measurement.startswith(("(b)", "(e)")):
            phase_name = "b: delivery 100 ms" if "100 ms" in row.measurement else None
            phase_name = phase_name or "b: delivery 0 ms"
        phase = phases.get(phase_name or "")
        if phase is None:
            notes.append(f"✗ {row.measurement}: {row.result}.")
            continue
        top = sorted(phase["cores"].items(), key=lambda kv: -kv[1])[:4]
        consumers = ", ".join(f"{cat} {cores:.2f}" for cat, cores in top)
        notes.append(
            f"✗ {row.measurement}: {row.result}. During `{phase_name}` the machine was "
            f"{phase['machine_busy'] * 100:.0f} % busy (of {results.machine.get('cores')} cores; "
            f"iowait {phase['machine_iowait'] * 100:.0f} %); top consumers in cores: {consumers}."
        )
    return notes


def sender_lines(results: Results) -> list[str]:
    lines = []
    for latency, run in results.delivery.items():
        senders: dict[str, dict[str, Any]] = run.get("senders") or {}
        if not senders:
            continue
        parts = [
            f"{name}: {_n(info.get('provider_calls_sent'))} calls, provider call "
            f"{_n(info.get('provider_call_mean_ms'), 1)} ms mean as the sender times it, "
            f"outcome batches of {_n(info.get('outcome_batch_mean'), 0)} messages committed in "
            f"{_n(info.get('outcome_write_mean_ms'), 1)} ms mean"
            for name, info in senders.items()
        ]
        lines.append(f"(b) at {latency} ms — " + "; ".join(parts))
    return lines


def pg_lines(results: Results) -> list[str]:
    lines = []
    for item in results.postgres_activity:
        waits = ", ".join(f"{k} {v * 100:.0f} %" for k, v in item["waits"].items())
        queries = "; ".join(f"`{k.strip()}…` {v * 100:.0f} %" for k, v in item["queries"].items())
        lines.append(
            f"{item['phase']}: {item['mean_active_backends']} active on average; {waits}. "
            f"Statements: {queries}"
        )
    return lines


def render(results: Results, table: list[Row], command: str) -> str:
    m = results.machine
    outside = outside_load(results.cpu)
    load = (
        f"load average before {results.load_before[0]:.2f}, after {results.load_after[0]:.2f}; "
        f"CPU of processes outside the benchmark: at most {outside:.2f} cores in a phase"
    )
    quiet = outside < OUTSIDE_LOAD_CORES
    env = env_summary(results.env)
    parts = [
        BEGIN,
        "## Latest run",
        "",
        f"{command} — {m.get('date')}, {results.mode} mode, {results.seconds / 60:.1f} min."
        + ("" if quiet else " **Taken under outside load (see the CPU table): re-run.**"),
        "",
        f"- Machine: {m.get('cores')} cores ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, "
        f"{m.get('os')}, kernel {m.get('kernel')}",
        f"- Python {m.get('python')}, PostgreSQL {m.get('postgresql')}, "
        f"RabbitMQ {m.get('rabbitmq')} (Erlang {m.get('erlang')}), aiohttp {m.get('aiohttp')}",
        f"- Machine load: {load} ({'quiet' if quiet else 'NOT quiet'})",
        "",
        results_table(table),
        "",
        "CPU used per phase, in cores (1.00 = one core busy the whole phase; the machine has "
        f"{m.get('cores')}). From /proc/<pid>/stat every second, each process charged to its "
        "service (PostgreSQL backends to postgres, the Erlang VM to rabbitmq; harness = this "
        "benchmark's own process, which also reads every service's log lines).",
        "",
        cpu_table(results),
        "",
    ]
    internals = sender_lines(results)
    if internals:
        parts += ["Inside the senders (their own metrics, deltas over each delivery run):", ""]
        parts += [f"- {line}" for line in internals]
        parts.append("")
    activity = pg_lines(results)
    if activity:
        parts += [
            "PostgreSQL's active backends (pg_stat_activity, 5 samples/s): what they waited on "
            "(share of backend-samples; CPU = running or runnable):",
            "",
        ]
        parts += [f"- {line}" for line in activity]
        parts.append("")
    notes = cpu_notes(results, table)
    if notes:
        parts += ["Missed targets, with what the CPU did meanwhile:", ""]
        parts += [f"- {note}" for note in notes]
        parts.append("")
    parts += [
        "Settings (environment of every Herald process; everything else at its default):",
        "",
        "```",
        *[f"{k}={v}" for k, v in env.items()],
        *[f"{k}={v}  # senders only" for k, v in env_summary(results.sender_env).items()],
        "```",
        "",
        "Each worker (scheduler, senders) serves /metrics on a free port of its own; the "
        "harness reads the senders' metrics before and after each delivery run. "
        "PostgreSQL: `PostgresServer(durable=True)` defaults (fsync and synchronous_commit on, "
        "shared_buffers 256MB, max_connections 200, the rest PostgreSQL's defaults). "
        "RabbitMQ: `RabbitMQServer` defaults (one node, management and prometheus plugins). "
        "Simulator: defaults, faults switched per phase with `PUT /_sim/faults`. "
        "`VACUUM (ANALYZE)` and `CHECKPOINT` run (untimed) before (a) and before the senders "
        "start.",
        END,
    ]
    return "\n".join(parts)


TEMPLATE_TAIL = """
## What we tried

Add a line per experiment: what was changed, the `--quick` or full numbers, and what it showed.

- (placeholder)
"""


def write_doc(path: Path, generated: str) -> None:
    if path.exists():
        text = path.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if pattern.search(text):
            path.write_text(pattern.sub(lambda _: generated, text, count=1))
            return
        path.write_text(text.rstrip() + "\n\n" + generated + "\n")
        return
    path.write_text("# Performance\n\n" + generated + "\n" + TEMPLATE_TAIL)
