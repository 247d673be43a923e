"""Measuring helpers: percentiles, steady rates, peak RSS and per-process CPU shares.

CPU is read from /proc/<pid>/stat (utime + stime ticks), sampled every second: the same data
``ps -o pid,pcpu,rss,comm`` shows, except that ps's %CPU is averaged over the process's whole
life, while the deltas here are what each process used *during* a phase.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
KERNEL = "kernel threads"
OUTSIDE = "outside this benchmark"


# --- latency --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Latency:
    """Milliseconds."""

    count: int
    errors: int
    p50: float
    p99: float
    max: float
    mean: float


def summarize(values_ms: Sequence[float], errors: int = 0) -> Latency:
    mean = sum(values_ms) / len(values_ms) if values_ms else math.nan
    return Latency(
        count=len(values_ms),
        errors=errors,
        p50=round(percentile(values_ms, 50), 2),
        p99=round(percentile(values_ms, 99), 2),
        max=round(max(values_ms), 2) if values_ms else math.nan,
        mean=round(mean, 2),
    )


# --- rates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SteadyRate:
    """Items per second between two fractions of a known total, from (seconds, count) samples."""

    rate: float
    t_from: float
    t_to: float
    reached: float  # fraction of the total the last sample had
    partial: bool  # the upper fraction was not reached: the rate is up to the last sample


def crossing(samples: Sequence[tuple[float, float]], level: float) -> float | None:
    """The time at which the (monotonic) counter reached ``level``, interpolated linearly."""
    previous: tuple[float, float] | None = None
    for t, count in samples:
        if count >= level:
            if previous is None or count == previous[1]:
                return t
            t0, c0 = previous
            return t0 + (t - t0) * (level - c0) / (count - c0)
        previous = (t, count)
    return None


def steady_rate(
    samples: Sequence[tuple[float, float]], total: int, low: float = 0.1, high: float = 0.9
) -> SteadyRate | None:
    if not samples or total <= 0:
        return None
    reached = samples[-1][1] / total
    t_low = crossing(samples, low * total)
    if t_low is None:
        return None
    t_high = crossing(samples, high * total)
    if t_high is not None and t_high > t_low:
        return SteadyRate((high - low) * total / (t_high - t_low), t_low, t_high, reached, False)
    t_last, c_last = samples[-1]
    if t_last <= t_low:
        return None
    return SteadyRate((c_last - low * total) / (t_last - t_low), t_low, t_last, reached, True)


# --- memory ---------------------------------------------------------------------------------


def status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` line of /proc/<pid>/status, e.g. VmHWM (peak resident set) or VmRSS."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    kb = status_kb(pid, "VmHWM")
    return None if kb is None else round(kb / 1024, 1)


# --- processes and CPU ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    ppid: int
    comm: str
    ticks: int  # utime + stime
    rss_kb: int


def read_proc(pid: int) -> ProcInfo | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    try:
        return ProcInfo(
            pid,
            int(fields[1]),
            head.partition("(")[2],
            int(fields[11]) + int(fields[12]),
            int(fields[21]) * PAGE_SIZE // 1024,
        )
    except (IndexError, ValueError):
        return None


def all_processes() -> dict[int, ProcInfo]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_proc(int(entry))
            if info is not None:
                found[info.pid] = info
    return found


def descendants(root: int, table: dict[int, ProcInfo] | None = None) -> list[int]:
    table = table if table is not None else all_processes()
    children: dict[int, list[int]] = defaultdict(list)
    for info in table.values():
        children[info.ppid].append(info.pid)
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def machine_ticks() -> tuple[int, int, int, int]:
    """(total, busy, iowait, steal) jiffies of all CPUs together, from /proc/stat; busy
    excludes steal (time the hypervisor gave to someone else)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait, steal = values[3], values[4], values[7]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total, total - idle - iowait - steal, iowait, steal


@dataclass
class PhaseCpu:
    """CPU used during one phase: per category in cores (1.0 = one core busy all the time)."""

    name: str
    seconds: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0  # fraction of all CPUs, 0..1
    machine_iowait: float = 0.0
    machine_steal: float = 0.0
    peak_busy: float = 0.0  # the busiest one-second sample of the phase, fraction of all CPUs


class CpuSampler:
    """Samples every process once a second and charges its CPU to a category and a phase.

    A process belongs to the category of its nearest registered ancestor (itself included):
    e.g. PostgreSQL backends to the postmaster's "postgres", the Erlang VM to "rabbitmq".
    Kernel threads and processes of other runs on the machine are kept apart, so that a
    number taken under outside load says so.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._roots: dict[int, str] = {os.getpid(): "harness"}
        self._lock = threading.Lock()
        self._prev: dict[int, ProcInfo] = all_processes()
        self._prev_machine = machine_ticks()
        self._prev_at = time.monotonic()
        self._phase: str | None = None
        self._phase_ticks: dict[str, dict[str, int]] = {}
        self._phase_machine: dict[str, list[int]] = {}
        self._phase_seconds: dict[str, float] = {}
        self._phase_peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self.order: list[str] = []

    def add_root(self, pid: int, category: str) -> None:
        with self._lock:
            self._roots[pid] = category

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def begin(self, phase: str) -> None:
        with self._lock:
            self._sample_locked()
            self._phase = phase
            if phase not in self._phase_ticks:
                self.order.append(phase)
                self._phase_ticks[phase] = defaultdict(int)
                self._phase_machine[phase] = [0, 0, 0, 0]
                self._phase_seconds[phase] = 0.0
                self._phase_peak[phase] = 0.0

    def end(self) -> None:
        with self._lock:
            self._sample_locked()
            self._phase = None

    def result(self, phase: str) -> PhaseCpu | None:
        with self._lock:
            if phase not in self._phase_ticks:
                return None
            seconds = self._phase_seconds[phase]
            total, busy, iowait, steal = self._phase_machine[phase]
            cores = {
                cat: round(ticks / CLK_TCK / seconds, 3) if seconds else 0.0
                for cat, ticks in sorted(self._phase_ticks[phase].items(), key=lambda kv: -kv[1])
            }
            return PhaseCpu(
                phase,
                round(seconds, 1),
                cores,
                round(busy / total, 3) if total else 0.0,
                round(iowait / total, 3) if total else 0.0,
                round(steal / total, 3) if total else 0.0,
                round(self._phase_peak[phase], 3),
            )

    def results(self) -> list[PhaseCpu]:
        return [r for r in (self.result(p) for p in self.order) if r is not None]

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                self._sample_locked()

    def _category(self, pid: int, table: dict[int, ProcInfo], cache: dict[int, str]) -> str:
        chain = []
        current = pid
        category = OUTSIDE
        while current > 0:
            if current in cache:
                category = cache[current]
                break
            if current in self._roots:
                category = self._roots[current]
                break
            if current == 2:
                category = KERNEL
                break
            chain.append(current)
            info = table.get(current)
            if info is None:
                break
            current = info.ppid
        for item in chain:
            cache[item] = category
        return category

    def _sample_locked(self) -> None:
        now = time.monotonic()
        table = all_processes()
        machine = machine_ticks()
        elapsed = now - self._prev_at
        phase = self._phase
        if phase is not None and elapsed > 0:
            cache: dict[int, str] = {}
            ticks = self._phase_ticks[phase]
            for pid, info in table.items():
                before = self._prev.get(pid)
                used = info.ticks - before.ticks if before is not None else info.ticks
                if used > 0:
                    ticks[self._category(pid, table, cache)] += used
            delta = [a - b for a, b in zip(machine, self._prev_machine, strict=True)]
            totals = self._phase_machine[phase]
            for index, value in enumerate(delta):
                totals[index] += value
            self._phase_seconds[phase] += elapsed
            if delta[0] > 0 and elapsed >= 0.5:
                self._phase_peak[phase] = max(self._phase_peak[phase], delta[1] / delta[0])
        self._prev, self._prev_machine, self._prev_at = table, machine, now


def format_cores(cores: dict[str, float], order: Iterable[str]) -> list[str]:
    return [f"{cores.get(cat, 0.0):.2f}" for cat in order]


# --- PostgreSQL activity --------------------------------------------------------------------


@dataclass
class PgActivity:
    """What the database's active backends were doing, sampled several times a second."""

    name: str
    samples: int = 0
    active: int = 0  # backend-samples in state 'active'
    waits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    queries: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def summary(self, top: int = 6) -> dict[str, object]:
        def share(table: dict[str, int]) -> dict[str, float]:
            ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
            return {key: round(count / self.active, 3) for key, count in ranked if self.active}

        return {
            "samples": self.samples,
            "mean_active_backends": round(self.active / self.samples, 2) if self.samples else 0,
            "waits": share(self.waits),
            "queries": share(self.queries),
        }


class PgSampler:
    """Polls pg_stat_activity (every ``interval_s``) while a phase runs, in its own thread."""

    QUERY = """
        SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU (no wait event)'),
               regexp_replace(left(ltrim(query), 48), '\\s+', ' ', 'g')
        FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
    """

    def __init__(self, database_url: str, interval_s: float = 0.2) -> None:
        self.database_url = database_url
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: PgActivity | None = None
        self.done: list[PgActivity] = []

    def begin(self, name: str) -> None:
        self.end()
        self.current = PgActivity(name)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(self.current,), daemon=True)
        self._thread.start()

    def end(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        if self.current is not None:
            self.done.append(self.current)
            self.current = None

    def _run(self, activity: PgActivity) -> None:
        import psycopg

        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                while not self._stop.wait(self.interval_s):
                    rows = conn.execute(self.QUERY).fetchall()
                    activity.samples += 1
                    for wait, query in rows:
                        activity.active += 1
                        activity.waits[str(wait)] += 1
                        activity.queries[str(query)] += 1
        except Exception as error:  # a diagnostic: never fail the run for it
            activity.waits[f"sampler failed: {error!r}"[:120]] += 1
