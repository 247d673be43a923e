"""The benchmark's phases against one Herald started through ``HeraldStack``.

(a) fan-out of a mailing to every client, no sender running; (d) statistics latency with that
mailing present; (c) the provider-call ceiling; (b) end-to-end delivery with two senders, with
(e) an integrator's CRUD loop during the 0 ms run; (f) peak RSS of every process at the end.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import psycopg

from bench.infra import Infra, rabbitmq_pids
from bench.measure import (
    CpuSampler,
    Latency,
    PgSampler,
    all_processes,
    crossing,
    descendants,
    peak_rss_mb,
    steady_rate,
    summarize,
)
from herald_common.topology import DELIVER_QUEUE
from herald_devstack.probes import free_port
from herald_devstack.processes import ProcessGroup
from herald_testing.factories import phone_columns
from herald_testing.stack import API_TOKEN, HeraldStack

REPO = Path(__file__).resolve().parent.parent
TERMINAL = ("sent", "failed", "expired", "cancelled")
SENDERS = ("sender-1", "sender-2")

# Production defaults (README), instead of the short test timings of HeraldStack's FAST_ENV.
BASE_ENV = {
    "HERALD_RETRY_BASE_MS": "2000",
    "HERALD_RETRY_MAX_MS": "900000",
    "HERALD_PROVIDER_TIMEOUT_S": "10",
    "HERALD_PROVIDER_CONNECT_TIMEOUT_S": "3",
    "HERALD_LEASE_S": "60",
    "HERALD_SCHEDULER_POLL_INTERVAL_S": "0.5",
    "HERALD_OUTBOX_GRACE_S": "10",
    "HERALD_MAX_ATTEMPTS": "10",
    "HERALD_LOG_LEVEL": "INFO",
    "HERALD_SENDER_CONCURRENCY": "200",
    "HERALD_SENDER_PREFETCH": "3",
    "HERALD_FANOUT_CHUNK_SIZE": "5000",
    "HERALD_JOB_SIZE": "100",
    "HERALD_RECORD_BATCH_SIZE": "500",
    "HERALD_DB_POOL_SIZE": "10",
}


@dataclass(frozen=True)
class Sizes:
    clients: int
    deliver_0ms: int
    deliver_100ms: int
    ceiling_s: float
    stats_requests: int
    crud_min_requests: int
    fanout_timeout_s: float
    deliver_timeout_s: float
    import_clients: bool = True


FULL = Sizes(1_000_000, 100_000, 60_000, 10.0, 500, 500, 600.0, 360.0)
QUICK = Sizes(100_000, 20_000, 10_000, 5.0, 200, 200, 120.0, 120.0)


@dataclass
class Results:
    mode: str
    sizes: dict[str, Any]
    env: dict[str, str]
    sender_env: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    clients: dict[str, Any] = field(default_factory=dict)
    fanout: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    ceiling: dict[str, Any] = field(default_factory=dict)
    delivery: dict[str, Any] = field(default_factory=dict)
    crud: dict[str, Any] = field(default_factory=dict)
    rss_mb: dict[str, Any] = field(default_factory=dict)
    cpu: list[dict[str, Any]] = field(default_factory=list)
    postgres_activity: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def expected_jobs(clients: int, chunk: int, job: int) -> int:
    full, rest = divmod(clients, chunk)
    return full * math.ceil(chunk / job) + math.ceil(rest / job)


class Bench:
    def __init__(
        self,
        infra: Infra,
        sizes: Sizes,
        env: dict[str, str],
        results: Results,
        log_dir: Path,
        sender_env: dict[str, str] | None = None,
    ) -> None:
        self.infra = infra
        self.sizes = sizes
        self.env = env
        self.sender_env = sender_env or {}
        self.results = results
        self.sampler = CpuSampler()
        self.pg = PgSampler(infra.database_url)
        self.group = ProcessGroup(log_dir=log_dir)
        self.stack = HeraldStack(self.group, infra.database_url, infra.amqp_url, extra_env=env)
        self.api_base = f"http://127.0.0.1:{self.stack.api_port}"

    # --- set-up -------------------------------------------------------------------------------

    def start(self) -> None:
        self.sampler.start()
        pid = self.infra.postgres.postmaster_pid()
        if pid is not None:
            self.sampler.add_root(pid, "postgres")
        for rabbit in rabbitmq_pids(self.infra):
            self.sampler.add_root(rabbit, "rabbitmq")
        self.sampler.begin("start-up")
        self.stack.migrate()
        self.sampler.add_root(self.stack.start_simulator().pid, "simulator")
        self.sampler.add_root(self.stack.start_api().pid, "api")
        port = free_port()
        self.stack.metrics_ports["scheduler"] = port
        scheduler = self.stack.start_scheduler(HERALD_METRICS_PORT=str(port))
        self.sampler.add_root(scheduler.pid, "scheduler")
        self.sampler.end()

    def start_senders(self) -> None:
        """Through ``HeraldStack.start_sender``, which waits for the INFO line
        ``sender_started``; with a quieter sender log level, until both consume instead."""
        quiet = self.sender_env.get("HERALD_LOG_LEVEL", "INFO").upper() not in ("INFO", "DEBUG")
        for name in SENDERS:
            port = free_port()
            self.stack.metrics_ports[name] = port
            env = {**self.sender_env, "HERALD_METRICS_PORT": str(port)}
            if quiet:
                process = self.group.start(
                    name,
                    [sys.executable, "-m", "herald_sender"],
                    env={**self.stack.env, "HERALD_SERVICE_INSTANCE": name, **env},
                )
            else:
                process = self.stack.start_sender(name, **env)
            self.sampler.add_root(process.pid, name)
        if quiet:
            asyncio.run(self._wait_consumers(len(SENDERS), timeout_s=60))

    async def _wait_consumers(self, count: int, timeout_s: float) -> None:
        connection = await aio_pika.connect(self.infra.amqp_url)
        async with connection:
            channel = await connection.channel()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                queue = await channel.declare_queue(DELIVER_QUEUE, passive=True)
                if (queue.declaration_result.consumer_count or 0) >= count:
                    return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{count} senders did not start consuming within {timeout_s} s")

    def sql(self, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.infra.database_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def settle_database(self) -> None:
        """Fresh planner statistics and a checkpoint, so that no phase pays for the previous."""
        self.sql("VACUUM (ANALYZE) client")
        self.sql("VACUUM (ANALYZE) message")
        self.sql("CHECKPOINT")

    # --- clients ------------------------------------------------------------------------------

    def load_clients(self) -> None:
        """Through POST /clients/import (bench/import_clients.py), timed; else by SQL."""
        count = self.sizes.clients
        outcome: dict[str, Any] = {"rows": count}
        if self.sizes.import_clients:
            self.sampler.begin("clients: import")
            try:
                outcome |= self._import_clients(count)
            except Exception as error:
                outcome |= {"import_error": repr(error)[:300]}
            self.sampler.end()
            live = self.sql("SELECT count(*) FROM client WHERE deleted_at IS NULL")[0][0]
            outcome["clients_in_db"] = live
            if outcome.get("status") != 200 or live != count:
                log(f"import did not give {count} clients ({outcome}); inserting them by SQL")
                outcome["import_failed"] = True
                self.sql("TRUNCATE client RESTART IDENTITY CASCADE")
        if outcome.get("clients_in_db") != count:
            started = time.perf_counter()
            self.sql(
                """
                INSERT INTO client (phone, operator_code, tag, timezone)
                SELECT phone, operator_code, 'bench', 'Europe/Moscow'
                FROM unnest(%(phones)s::text[], %(codes)s::text[]) WITH ORDINALITY
                    AS generated (phone, operator_code, n)
                ORDER BY n
                """,
                phone_columns(79_000_000_000, count),
            )
            outcome["sql_insert_s"] = round(time.perf_counter() - started, 1)
            outcome["clients_in_db"] = self.sql("SELECT count(*) FROM client")[0][0]
        self.results.clients = outcome
        self.settle_database()

    def _import_clients(self, count: int) -> dict[str, Any]:
        from bench.import_clients import make_files, post_file

        with tempfile.TemporaryDirectory(prefix="herald-bench-csv-") as directory:
            started = time.perf_counter()
            files = make_files(Path(directory), count, ["csv"])
            log(f"CSV of {count} clients written in {time.perf_counter() - started:.1f} s")
            answer = asyncio.run(
                post_file(self.api_base, API_TOKEN, "csv", files["csv"], count, "update")
            )
        log(f"import: {answer}")
        return {
            "format": "csv",
            "bytes": answer["bytes"],
            "seconds": answer["seconds"],
            "rows_per_s": answer["rows_per_s"],
            "status": answer["status"],
            "answer": answer["answer"],
        }

    # --- mailings -----------------------------------------------------------------------------

    def create_mailing(self, tags: list[str], text: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        response = self.stack.api.post(
            "/mailings",
            json={
                "starts_at": now.isoformat(),
                "ends_at": (now + timedelta(hours=6)).isoformat(),
                "text": text,
                "filter": {"tags": tags} if tags else {},
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"POST /mailings: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body

    # --- (a) fan-out --------------------------------------------------------------------------

    def fan_out(self) -> int:
        settings = {
            "chunk": int(self.env["HERALD_FANOUT_CHUNK_SIZE"]),
            "job": int(self.env["HERALD_JOB_SIZE"]),
        }
        jobs = expected_jobs(self.sizes.clients, settings["chunk"], settings["job"])
        scheduler = self.group["scheduler"]
        seen: list[tuple[float, str]] = []
        since = scheduler.line_count

        def watch_log() -> None:
            try:
                line = scheduler.wait_for_line(
                    '"event":"fanout_done"', timeout=self.sizes.fanout_timeout_s, since=since
                )
                seen.append((time.time(), line))
            except (TimeoutError, Exception) as error:
                seen.append((time.time(), f"not seen: {error!r}"[:300]))

        watcher = threading.Thread(target=watch_log, daemon=True)
        watcher.start()
        self.sampler.begin("a: fan-out")
        self.pg.begin("a: fan-out")
        outcome = asyncio.run(self._watch_fan_out(jobs))
        self.pg.end()
        self.sampler.end()
        watcher.join(timeout=10)
        if seen and seen[0][1].startswith("{"):
            event = json.loads(seen[0][1])
            logged = datetime.fromisoformat(event["ts"]).timestamp()
            outcome["log_fanout_done_s"] = round(logged - outcome["posted_at"], 2)
            outcome["log_line"] = seen[0][1][:300]
        else:
            outcome["log_line"] = seen[0][1] if seen else "not seen"
        mailing_id = int(outcome["mailing_id"])
        outcome["messages_in_db"] = self.sql(
            "SELECT count(*) FROM message WHERE mailing_id = %(m)s", {"m": mailing_id}
        )[0][0]
        outcome["expected_jobs"] = jobs
        self.results.fanout = outcome
        log(f"fan-out: {outcome}")
        return mailing_id

    async def _watch_fan_out(self, jobs: int) -> dict[str, Any]:
        count = self.sizes.clients
        connection = await aio_pika.connect(self.infra.amqp_url)
        async with (
            connection,
            await psycopg.AsyncConnection.connect(self.infra.database_url, autocommit=True) as db,
        ):
            channel = await connection.channel()
            posted_at = time.time()
            started = time.perf_counter()
            mailing = await asyncio.to_thread(self.create_mailing, [], "Herald fan-out benchmark")
            mailing_id = mailing["id"]
            deadline = started + self.sizes.fanout_timeout_s
            marks: dict[str, float] = {}
            progress: list[tuple[float, int]] = []
            state: dict[str, Any] = {}
            while time.perf_counter() < deadline:
                row = await (
                    await db.execute(
                        """
                        SELECT (SELECT count(*) FROM outbox),
                               (SELECT coalesce(sum(count), 0) FROM mailing_message_count
                                WHERE mailing_id = %(m)s),
                               (SELECT fanout_done_at IS NOT NULL FROM mailing WHERE id = %(m)s)
                        """,
                        {"m": mailing_id},
                    )
                ).fetchone()
                assert row is not None
                queue = await channel.declare_queue(DELIVER_QUEUE, passive=True)
                depth = queue.declaration_result.message_count or 0
                now = time.perf_counter() - started
                outbox, messages, done = int(row[0]), int(row[1]), bool(row[2])
                state = {"outbox": outbox, "messages": messages, "done": done, "queue": depth}
                if not progress or now - progress[-1][0] >= 1:
                    progress.append((round(now, 2), messages))
                if messages >= count:
                    marks.setdefault("messages_written_s", now)
                if done:
                    marks.setdefault("fanout_done_flag_s", now)
                if depth >= jobs:
                    marks.setdefault("all_jobs_in_queue_s", now)
                if outbox == 0 and messages == count and done and depth >= jobs:
                    break
                await asyncio.sleep(0.1)
            seconds = time.perf_counter() - started
            complete = state.get("messages") == count and state.get("outbox") == 0
            complete = complete and state.get("done") and state.get("queue", 0) >= jobs
            row = await (
                await db.execute(
                    "SELECT extract(epoch FROM fanout_done_at - created_at) FROM mailing "
                    "WHERE id = %(m)s",
                    {"m": mailing_id},
                )
            ).fetchone()
        return {
            "mailing_id": mailing_id,
            "messages": count,
            "complete": bool(complete),
            "seconds": round(seconds, 2),
            "messages_per_s": round(count / seconds) if complete else None,
            "db_fanout_done_s": float(row[0]) if row and row[0] is not None else None,
            "marks": {k: round(v, 2) for k, v in marks.items()},
            "last_state": state,
            "progress": progress,
            "posted_at": posted_at,
        }

    # --- (d) statistics latency ---------------------------------------------------------------

    def stats_latency(self, mailing_id: int) -> None:
        self.sampler.begin("d: stats latency")
        out: dict[str, Any] = {}
        for name, path in (
            ("mailing stats", f"/mailings/{mailing_id}/stats"),
            ("all stats", "/mailings/stats"),
        ):
            out[name] = asdict(self._time_get(path, self.sizes.stats_requests, warmup=20))
        body = self.stack.stats(mailing_id)
        out["total_shown"] = body["total"]
        self.sampler.end()
        self.results.stats = out
        log(f"stats: {out}")

    def _time_get(self, path: str, count: int, warmup: int) -> Latency:
        for _ in range(warmup):
            self.stack.api.get(path)
        latencies: list[float] = []
        errors = 0
        for _ in range(count):
            started = time.perf_counter()
            response = self.stack.api.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200
        return summarize(latencies, errors)

    # --- between (a)/(d) and (b) --------------------------------------------------------------

    def prepare_delivery(self) -> None:
        """Drop the fan-out's jobs (its messages stay, pending) and add the delivery clients."""
        # Their jobs go on purpose: hold the fan-out's mailing first, or the scheduler's
        # lost-job sweep would rightly give its million messages new jobs during (b).
        self.sql("UPDATE mailing SET paused_at = now() WHERE fanout_done_at IS NOT NULL")
        status, body = self.infra.rabbitmq.api.request(
            "DELETE", f"/api/queues/%2F/{DELIVER_QUEUE}/contents"
        )
        if status not in (200, 204):
            raise RuntimeError(f"purging {DELIVER_QUEUE}: {status} {body}")
        first = 78_000_000_000
        for tag, count in (
            ("bench-0ms", self.sizes.deliver_0ms),
            ("bench-100ms", self.sizes.deliver_100ms),
        ):
            self.sql(
                """
                INSERT INTO client (phone, operator_code, tag, timezone)
                SELECT phone, operator_code, %(tag)s, 'Europe/Moscow'
                FROM unnest(%(phones)s::text[], %(codes)s::text[]) WITH ORDINALITY
                    AS generated (phone, operator_code, n)
                ORDER BY n
                """,
                {"tag": tag, **phone_columns(first, count)},
            )
            first += count
        self.settle_database()
        self.sampler.begin("start senders")
        self.start_senders()
        self.sampler.end()

    # --- (c) ceiling --------------------------------------------------------------------------

    def ceiling(self, latency_ms: int) -> None:
        concurrency = 2 * int(
            self.sender_env.get("HERALD_SENDER_CONCURRENCY", self.env["HERALD_SENDER_CONCURRENCY"])
        )
        self.stack.faults(latency_ms=latency_ms)
        argv = [
            sys.executable,
            "-m",
            "bench.ceiling",
            "--url",
            self.stack.env["HERALD_PROVIDER_URL"],
            "--token",
            self.stack.env["HERALD_PROVIDER_TOKEN"],
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(self.sizes.ceiling_s),
            "--first-id",
            str(10**12 * (1 + latency_ms)),
        ]
        self.sampler.begin(f"c: ceiling {latency_ms} ms")
        process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
        self.sampler.add_root(process.pid, "ceiling client")
        out, _ = process.communicate(timeout=self.sizes.ceiling_s + 120)
        self.sampler.end()
        if process.returncode != 0:
            raise RuntimeError(f"bench.ceiling exited {process.returncode}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        self.results.ceiling[f"{latency_ms}"] = result
        log(f"ceiling {latency_ms} ms: {result}")

    # --- (b) delivery, with (e) CRUD during the 0 ms run --------------------------------------

    def deliver(self, latency_ms: int, count: int, tag: str, with_crud: bool) -> None:
        self.stack.faults(latency_ms=latency_ms)
        before = self.stack.sim_stats()
        metrics_before = {name: scrape_quietly(self.stack, name) for name in SENDERS}
        phase = f"b: delivery {latency_ms} ms"
        self.sampler.begin(phase)
        self.pg.begin(phase)
        started = time.perf_counter()
        mailing = self.create_mailing([tag], f"Herald delivery benchmark, {latency_ms} ms")
        mailing_id = mailing["id"]
        crud: subprocess.Popen[str] | None = None
        if with_crud:
            crud = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.crud",
                    "--api-url",
                    f"{self.api_base}/api/v1",
                    "--token",
                    API_TOKEN,
                    "--mailing-id",
                    str(mailing_id),
                    "--min-requests",
                    str(self.sizes.crud_min_requests),
                    "--max-seconds",
                    str(self.sizes.deliver_timeout_s + 120),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.sampler.add_root(crud.pid, "crud client")
        sim_series: list[tuple[float, float]] = []
        sent_series: list[tuple[float, float]] = []
        by_status: dict[str, int] = {}
        settled = False
        tick = 0
        while True:
            tick += 1
            at = time.perf_counter() - started
            sim = self.stack.sim_stats()
            sim_series.append((round(at, 3), sim["accepted"] - before["accepted"]))
            at = time.perf_counter() - started
            stats = self.stack.stats(mailing_id)
            by_status = {k: v for k, v in stats["by_status"].items() if v}
            sent_series.append((round(at, 3), stats["by_status"]["sent"]))
            terminal = sum(stats["by_status"][s] for s in TERMINAL)
            if stats["total"] == count and terminal == count:
                settled = True
                break
            if at > self.sizes.deliver_timeout_s:
                break
            time.sleep(max(0.0, tick - (time.perf_counter() - started)))
        self.pg.end()
        crud_out = self._stop_crud(crud) if crud is not None else None
        self.sampler.end()
        wall = self.sql(
            """
            SELECT extract(epoch FROM max(m.updated_at) - ml.created_at)
            FROM message m JOIN mailing ml ON ml.id = m.mailing_id
            WHERE m.mailing_id = %(m)s GROUP BY ml.created_at
            """,
            {"m": mailing_id},
        )
        after = self.stack.sim_stats()
        sim_rate = steady_rate(sim_series, count)
        sent_rate = steady_rate(sent_series, count)
        wall_s = float(wall[0][0]) if wall and settled else None
        outcome = {
            "latency_ms": latency_ms,
            "mailing_id": mailing_id,
            "messages": count,
            "settled": settled,
            "by_status": by_status,
            "sim_steady": asdict(sim_rate) if sim_rate else None,
            "sent_steady": asdict(sent_rate) if sent_rate else None,
            "wall_s": round(wall_s, 2) if wall_s else None,
            "overall_per_s": round(count / wall_s) if wall_s else None,
            "with_crud": with_crud,
            "first_accepted_s": crossing(sim_series, 1),
            "sim_requests": after["requests"] - before["requests"],
            "sim_accepted": after["accepted"] - before["accepted"],
            "duplicates_accepted": after["duplicates_accepted_count"]
            - before["duplicates_accepted_count"],
            "senders": {
                name: sender_internals(metrics_before[name], scrape_quietly(self.stack, name))
                for name in SENDERS
            },
            "sim_series": sim_series,
            "sent_series": sent_series,
        }
        self.results.delivery[f"{latency_ms}"] = outcome
        printable = {k: v for k, v in outcome.items() if not k.endswith("_series")}
        log(f"delivery {latency_ms} ms: {printable}")
        if crud_out is not None:
            self.results.crud = crud_out

    def _stop_crud(self, crud: subprocess.Popen[str]) -> dict[str, Any]:
        crud.send_signal(signal.SIGTERM)
        try:
            out, _ = crud.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            crud.kill()
            out, _ = crud.communicate()
        raw: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        latencies: dict[str, list[float]] = raw["latency_ms"]
        errors: dict[str, int] = raw["errors"]
        merged = [value for values in latencies.values() for value in values]
        summary = {
            op: asdict(summarize(values, errors.get(op, 0))) for op, values in latencies.items()
        }
        summary["overall"] = asdict(summarize(merged, sum(errors.values())))
        if raw.get("from_schedule_ms"):
            summary["from schedule"] = asdict(summarize(raw["from_schedule_ms"], 0))
        out_dict = {
            "requests": raw["requests"],
            "rate_per_s": raw.get("rate_per_s"),
            "by_operation": summary,
        }
        if raw.get("error_examples"):
            out_dict["error_examples"] = raw["error_examples"]
        log(f"crud: {summary['overall']}")
        return out_dict

    # --- (f) memory ---------------------------------------------------------------------------

    def peak_rss(self) -> None:
        rss: dict[str, Any] = {}
        for name in ("api", "scheduler", *SENDERS, "simulator"):
            rss[name] = peak_rss_mb(self.group[name].pid)
        table = all_processes()
        beam = [p for p in rabbitmq_pids(self.infra) if table.get(p) and "beam" in table[p].comm]
        if beam:
            rss["rabbitmq (beam.smp)"] = peak_rss_mb(beam[0])
        postmaster = self.infra.postgres.postmaster_pid()
        if postmaster is not None:
            children = descendants(postmaster, table)
            peaks = {pid: peak_rss_mb(pid) or 0.0 for pid in children}
            if peaks:
                top = max(peaks, key=lambda pid: peaks[pid])
                try:
                    what = Path(f"/proc/{top}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    what = b"?"
                rss["postgres (largest backend)"] = peaks[top]
                rss["postgres (largest backend) is"] = what.decode(errors="replace").strip()
        self.results.rss_mb = rss
        log(f"peak RSS (MB): {rss}")

    # --- tear-down ----------------------------------------------------------------------------

    def close(self) -> None:
        self.sampler.stop()
        self.pg.end()
        self.results.cpu = [asdict(r) for r in self.sampler.results()]
        self.results.postgres_activity = [{"phase": a.name, **a.summary()} for a in self.pg.done]
        self.stack.close()


def scrape_quietly(stack: HeraldStack, name: str) -> dict[str, float]:
    try:
        return stack.scrape(name)
    except (httpx.HTTPError, KeyError, OSError):
        return {}


def sender_internals(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """What a sender's own metrics say about a phase: means of its histograms' deltas."""

    def mean(name: str, scale: float = 1.0) -> float | None:
        count = after.get(f"{name}_count", 0.0) - before.get(f"{name}_count", 0.0)
        total = after.get(f"{name}_sum", 0.0) - before.get(f"{name}_sum", 0.0)
        return round(total / count * scale, 2) if count else None

    calls = 'herald_provider_call_duration_seconds{outcome="sent"}'
    return {
        "provider_calls_sent": after.get(calls.replace("{", "_count{"), 0.0)
        - before.get(calls.replace("{", "_count{"), 0.0),
        "provider_call_mean_ms": mean_labelled(before, after, calls, 1000),
        "outcome_batch_mean": mean("herald_sender_outcome_batch_size"),
        "outcome_write_mean_ms": mean("herald_sender_outcome_write_seconds", 1000),
        "outcome_batches": after.get("herald_sender_outcome_batch_size_count", 0.0)
        - before.get("herald_sender_outcome_batch_size_count", 0.0),
    }


def mean_labelled(
    before: dict[str, float], after: dict[str, float], metric: str, scale: float
) -> float | None:
    """Mean of a labelled histogram's delta, e.g. metric = 'x_seconds{outcome="sent"}'."""
    name, _, labels = metric.partition("{")
    count_key, sum_key = f"{name}_count{{{labels}", f"{name}_sum{{{labels}"
    count = after.get(count_key, 0.0) - before.get(count_key, 0.0)
    total = after.get(sum_key, 0.0) - before.get(sum_key, 0.0)
    return round(total / count * scale, 2) if count else None


def env_summary(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(env.items()) if "TOKEN" not in k and "URL" not in k}


def outside_load(cpu: list[dict[str, Any]]) -> float:
    """The most CPU (in cores) that processes outside the benchmark used in any phase."""
    from bench.measure import OUTSIDE

    return max((phase["cores"].get(OUTSIDE, 0.0) for phase in cpu), default=0.0)


def pid_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")
