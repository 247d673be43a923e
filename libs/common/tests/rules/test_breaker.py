"""The provider circuit breaker, step by step with an explicit clock."""

from __future__ import annotations

from herald_common.rules.breaker import CallKind, CircuitBreaker, CircuitState, Permit


def breaker() -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, base_cooldown_s=1.0, max_cooldown_s=4.0)


def test_stays_closed_below_the_threshold_and_a_success_resets_the_count() -> None:
    b = breaker()
    for _ in range(2):
        assert b.record(0, CallKind.FAILURE) is False
    b.record(0, CallKind.SUCCESS)
    for _ in range(2):
        b.record(0, CallKind.FAILURE)
    assert b.state == CircuitState.CLOSED
    assert b.permit(0) == Permit(True)


def test_opens_after_threshold_failures_and_refuses_calls_until_cooldown() -> None:
    b = breaker()
    opened = [b.record(10, CallKind.FAILURE) for _ in range(3)]
    assert opened == [False, False, True]
    assert b.state == CircuitState.OPEN
    assert b.permit(10.25) == Permit(False, wait_s=0.75)


def test_after_cooldown_exactly_one_probe_is_let_through() -> None:
    b = breaker()
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    assert b.permit(1.0) == Permit(True, probe=True)
    assert b.state == CircuitState.HALF_OPEN
    assert b.permit(1.0).allowed is False
    assert b.permit(1.5).allowed is False


def test_successful_probe_closes_the_circuit() -> None:
    b = breaker()
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    b.permit(1.0)
    b.record(1.1, CallKind.SUCCESS, probe=True)
    assert b.state == CircuitState.CLOSED
    assert b.permit(1.1) == Permit(True)


def test_failed_probes_double_the_cooldown_up_to_the_cap() -> None:
    b = breaker()
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    now = 0.0
    cooldowns = []
    for _ in range(4):
        now = b.open_until
        assert b.permit(now).probe is True
        b.record(now, CallKind.FAILURE, probe=True)
        cooldowns.append(b.open_until - now)
    assert cooldowns == [2.0, 4.0, 4.0, 4.0]


def test_a_probe_after_a_long_idle_spell_starts_the_doubling_over() -> None:
    b = breaker()
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    for _ in range(3):  # a long outage: the cooldown reaches its cap of 4 s
        now = b.open_until
        b.permit(now)
        b.record(now, CallKind.FAILURE, probe=True)
    assert b.cooldown_s == 4.0
    # Nothing to send for a while; the next call (a probe) fails: back to the base cooldown.
    idle_probe_at = b.open_until + 4.5
    assert b.permit(idle_probe_at).probe is True
    b.record(idle_probe_at + 0.1, CallKind.FAILURE, probe=True)
    assert b.state == CircuitState.OPEN
    assert b.cooldown_s == 1.0
    assert b.permit(idle_probe_at + 1.0).allowed is False
    assert b.permit(idle_probe_at + 1.2).probe is True


def test_a_probe_just_after_the_cooldown_keeps_doubling() -> None:
    b = breaker()
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    probe_at = b.open_until + 3.9  # late, but within the cap of 4 s
    b.permit(probe_at)
    b.record(probe_at, CallKind.FAILURE, probe=True)
    assert b.cooldown_s == 2.0


def test_probes_are_a_trickle_over_a_long_outage() -> None:
    b = breaker()
    probes = 0
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    # Ask for a call every 10 ms for 60 s of outage: only the probes get through.
    for step in range(6000):
        now = step / 100
        permit = b.permit(now)
        if permit.allowed:
            probes += 1
            b.record(now, CallKind.FAILURE, probe=permit.probe)
    assert 14 <= probes <= 17  # about one per 4 s cooldown


def test_an_auth_refusal_opens_at_once_with_its_reason() -> None:
    b = breaker()
    assert b.record(5, CallKind.AUTH) is True
    assert b.state == CircuitState.OPEN
    assert "401/403" in b.reason
    assert b.permit(5.5).allowed is False


def test_late_failures_of_calls_started_before_opening_do_not_extend_it() -> None:
    b = breaker()
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    until = b.open_until
    b.record(0.5, CallKind.FAILURE)
    assert b.open_until == until


def test_a_late_success_while_open_closes_it() -> None:
    b = breaker()
    for _ in range(3):
        b.record(0, CallKind.FAILURE)
    b.record(0.2, CallKind.SUCCESS)
    assert b.state == CircuitState.CLOSED
