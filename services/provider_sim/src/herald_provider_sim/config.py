"""Simulator settings: the fault switches, their validation and loading from the environment."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
DEFAULT_SECRET = "herald-dev-secret"
DEFAULT_MAX_RECORDS = 2_000_000
ENV_PREFIX = "HERALD_SIM_"

_RATIOS = frozenset({"error_ratio", "hang_ratio", "malformed_ratio", "status_429_ratio"})
_DURATIONS = frozenset({"latency_ms", "latency_jitter_ms", "hang_s", "retry_after_s"})
_FLAGS = frozenset({"outage", "unauthorized"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class FaultValidationError(ValueError):
    """A fault setting (or query parameter) has a bad value; `field` names it."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault switches, each applied per request; ratios are probabilities in [0, 1]."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_ratio: float = 0.0
    hang_ratio: float = 0.0
    hang_s: float = 3600.0
    malformed_ratio: float = 0.0
    outage: bool = False
    unauthorized: bool = False
    status_429_ratio: float = 0.0
    retry_after_s: float = 1.0
    seed: int | None = None

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


FAULT_FIELDS = tuple(f.name for f in dataclasses.fields(Faults))


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulator needs at startup; `faults` are also the values reset returns to."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    secret: str = DEFAULT_SECRET
    faults: Faults = field(default_factory=Faults)
    max_records: int = DEFAULT_MAX_RECORDS
    access_log: bool = False


def _check_number(name: str, value: object) -> float:
    # bool is an int subclass; `true` is never a meaningful latency or ratio
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultValidationError(name, "must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise FaultValidationError(name, "must be a finite non-negative number")
    if name in _RATIOS and number > 1:
        raise FaultValidationError(name, "must be between 0 and 1")
    return number


def _check_value(name: str, value: object) -> object:
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise FaultValidationError(name, "must be true or false")
        return value
    if name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise FaultValidationError(name, "must be an integer or null")
        return value
    if name in _RATIOS or name in _DURATIONS:
        return _check_number(name, value)
    raise FaultValidationError(name, "unknown fault field")


def update_faults(current: Faults, changes: Mapping[str, object]) -> Faults:
    """Return `current` with `changes` applied; raise FaultValidationError on any bad field."""
    checked = {name: _check_value(name, value) for name, value in changes.items()}
    return dataclasses.replace(current, **checked)  # type: ignore[arg-type]


def _parse_env_value(name: str, raw: str) -> object:
    text = raw.strip()
    if name in _FLAGS:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise FaultValidationError(name, f"cannot read {raw!r} as a boolean")
    if name == "seed":
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise FaultValidationError(name, f"cannot read {raw!r} as an integer") from None
    try:
        return float(text)
    except ValueError:
        raise FaultValidationError(name, f"cannot read {raw!r} as a number") from None


def faults_from_env(environ: Mapping[str, str]) -> Faults:
    """Read `HERALD_SIM_<FIELD>` variables (e.g. HERALD_SIM_ERROR_RATIO) over the defaults."""
    changes = {
        name: _parse_env_value(name, environ[ENV_PREFIX + name.upper()])
        for name in FAULT_FIELDS
        if ENV_PREFIX + name.upper() in environ
    }
    return update_faults(Faults(), changes)


def _env_int(
    environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = environ.get(ENV_PREFIX + name.upper())
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FaultValidationError(name, f"cannot read {raw!r} as an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise FaultValidationError(name, f"must be between {minimum} and {maximum or 'any'}")
    return value


def load_config(environ: Mapping[str, str] | None = None) -> SimConfig:
    """Build the startup configuration from `HERALD_SIM_*` environment variables."""
    env = os.environ if environ is None else environ
    access_log = env.get(ENV_PREFIX + "ACCESS_LOG", "").strip().lower() in _TRUE
    return SimConfig(
        host=env.get(ENV_PREFIX + "HOST") or DEFAULT_HOST,
        port=_env_int(env, "port", DEFAULT_PORT, 0, 65535),
        secret=env.get(ENV_PREFIX + "JWT_SECRET") or DEFAULT_SECRET,
        faults=faults_from_env(env),
        max_records=_env_int(env, "max_records", DEFAULT_MAX_RECORDS, 1),
        access_log=access_log,
    )
