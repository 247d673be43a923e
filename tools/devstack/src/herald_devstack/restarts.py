"""When herald-dev brings back a process that died on its own, and when it gives up.

As a kubelet does: the delay doubles with each crash in a row, and a process that stayed up for
a while starts counting afresh. Unlike a kubelet it gives up after a few crashes in a row (a
process that cannot start usually needs its configuration fixed, and a developer's terminal
should say so rather than loop). Pure state: the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    limit: int = 5  # crashes in a row that are restarted; 0: stop everything at the first
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    stable_after_s: float = 30.0  # a process up this long starts counting its crashes afresh

    def delay(self, crashes_in_a_row: int) -> float | None:
        """Seconds to wait before restarting after this many crashes in a row; None: give up."""
        if crashes_in_a_row > self.limit:
            return None
        return min(self.base_delay_s * 2.0 ** (crashes_in_a_row - 1), self.max_delay_s)


@dataclass
class Watch:
    """What herald-dev knows of one supervised process."""

    started_at: float
    crashes_in_a_row: int = 0
    restart_at: float | None = None

    def crashed(self, now: float, policy: RestartPolicy) -> float | None:
        """Note a crash (or a failed restart); the delay before the next try, None to give up."""
        if self.restart_at is None and now - self.started_at >= policy.stable_after_s:
            self.crashes_in_a_row = 0
        self.crashes_in_a_row += 1
        delay = policy.delay(self.crashes_in_a_row)
        self.restart_at = None if delay is None else now + delay
        return delay

    def restart_due(self, now: float) -> bool:
        return self.restart_at is not None and now >= self.restart_at

    def restarted(self, now: float) -> None:
        self.started_at = now
        self.restart_at = None
