"""Fault validation and configuration from HERALD_SIM_* environment variables."""

from __future__ import annotations

import pytest

from herald_provider_sim.config import (
    Faults,
    FaultValidationError,
    SimConfig,
    load_config,
    update_faults,
)


def test_defaults_without_environment() -> None:
    assert load_config({}) == SimConfig(
        host="127.0.0.1", port=8001, secret="herald-dev-secret", faults=Faults()
    )


def test_environment_sets_every_kind_of_field() -> None:
    config = load_config(
        {
            "HERALD_SIM_HOST": "0.0.0.0",
            "HERALD_SIM_PORT": "9000",
            "HERALD_SIM_JWT_SECRET": "s",
            "HERALD_SIM_LATENCY_MS": "15",
            "HERALD_SIM_ERROR_RATIO": "0.1",
            "HERALD_SIM_OUTAGE": "true",
            "HERALD_SIM_SEED": "42",
            "HERALD_SIM_MAX_RECORDS": "100",
        }
    )

    assert (config.host, config.port, config.secret, config.max_records) == (
        "0.0.0.0",
        9000,
        "s",
        100,
    )
    assert config.faults == Faults(latency_ms=15, error_ratio=0.1, outage=True, seed=42)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HERALD_SIM_ERROR_RATIO", "2"),
        ("HERALD_SIM_HANG_RATIO", "abc"),
        ("HERALD_SIM_OUTAGE", "maybe"),
        ("HERALD_SIM_PORT", "70000"),
        ("HERALD_SIM_SEED", "1.5"),
    ],
)
def test_bad_environment_is_refused(name: str, value: str) -> None:
    with pytest.raises(FaultValidationError):
        load_config({name: value})


def test_update_rejects_nan_and_keeps_current_values() -> None:
    current = Faults(latency_ms=5)

    with pytest.raises(FaultValidationError) as raised:
        update_faults(current, {"latency_ms": float("nan")})

    assert raised.value.field == "latency_ms"
    assert update_faults(current, {"seed": None, "hang_s": 2}) == Faults(latency_ms=5, hang_s=2)
