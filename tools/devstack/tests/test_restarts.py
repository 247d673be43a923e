"""herald-dev's restart policy, with an explicit clock."""

from __future__ import annotations

from herald_devstack.restarts import RestartPolicy, Watch

POLICY = RestartPolicy(limit=4, base_delay_s=1.0, max_delay_s=5.0, stable_after_s=30.0)


def test_the_delay_doubles_up_to_the_cap_and_gives_up_past_the_limit() -> None:
    assert [POLICY.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, None]


def test_a_limit_of_zero_gives_up_at_the_first_crash() -> None:
    assert RestartPolicy(limit=0).delay(1) is None


def test_a_process_crashing_right_after_each_start_is_given_up_on() -> None:
    watch = Watch(started_at=0.0)
    now, delays = 0.5, []
    while (delay := watch.crashed(now, POLICY)) is not None:
        delays.append(delay)
        assert not watch.restart_due(now + delay - 0.01)
        assert watch.restart_due(now + delay)
        watch.restarted(now + delay)
        now += delay + 0.5
    assert delays == [1.0, 2.0, 4.0, 5.0]


def test_a_process_that_stayed_up_starts_counting_afresh() -> None:
    watch = Watch(started_at=0.0)
    for _ in range(3):
        delay = watch.crashed(1.0, POLICY)
        assert delay is not None
        watch.restarted(1.0 + delay)
    assert watch.crashes_in_a_row == 3
    assert watch.crashed(100.0, POLICY) == 1.0
    assert watch.crashes_in_a_row == 1


def test_a_failed_restart_counts_as_a_crash_of_its_own() -> None:
    watch = Watch(started_at=0.0)
    assert watch.crashed(60.0, POLICY) == 1.0  # up a minute: a first crash
    # The restart at 61 s fails at once: not a process that "stayed up" since 0 s.
    assert watch.crashed(61.0, POLICY) == 2.0
