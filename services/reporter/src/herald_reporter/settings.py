"""Reporter settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from herald_common.safety import smtp_auth_problem
from herald_common.settings import HeraldSettings

# An addr-spec as operators write one (local@domain.tld); display names are not accepted, so
# a comma can only ever separate two addresses.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class SmtpSecurity(StrEnum):
    NONE = "none"  # plain text, for a relay on localhost or inside the cluster
    STARTTLS = "starttls"  # connect in plain text, then upgrade; refused if the server cannot
    TLS = "tls"  # TLS from the first byte (port 465)


def check_address(value: str) -> str:
    address = value.strip()
    if len(address) > 254 or not _ADDRESS.match(address):
        raise ValueError(f"{value!r} is not an e-mail address (name@example.com)")
    return address


class ReporterSettings(HeraldSettings):
    # The reporter talks to PostgreSQL and SMTP only.
    amqp_url: str = Field(default="", description="Unused by the reporter.")
    metrics_port: int = Field(default=9109, ge=0, le=65535, description="/metrics; 0: off.")

    report_time: time = Field(
        default=time(8, 0), description="HH:MM, local time in HERALD_REPORT_TIMEZONE."
    )
    report_timezone: str = Field(default="UTC", description="IANA zone name of the report time.")
    report_recipients: Annotated[list[str], NoDecode] = Field(
        description="Comma-separated e-mail addresses; at least one."
    )
    report_from: str = Field(default="herald@localhost", description="The From address.")
    report_max_backlog_days: int = Field(
        default=7, ge=1, le=31, description="Missed days sent after downtime, the most recent."
    )
    report_max_mailings: int = Field(
        default=500, ge=1, le=10_000, description="Mailings listed in one report (totals: all)."
    )
    report_poll_interval_s: float = Field(default=30, gt=0, le=3600)
    report_lease_s: float = Field(
        default=300, gt=0, description="A claim older than this is taken over (crash mid-send)."
    )
    report_retry_base_s: float = Field(default=30, gt=0, description="Delay after a failed send.")
    report_retry_max_s: float = Field(default=1800, gt=0, description="Longest delay.")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_allow_plaintext_auth: bool = Field(
        default=False,
        description="Allow SMTP AUTH with HERALD_SMTP_SECURITY=none (the password in clear "
        "text; refused by default).",
    )
    smtp_timeout_s: float = Field(default=30, gt=0, le=600)
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the server with (default: the system's)."
    )

    @field_validator("report_time", mode="before")
    @classmethod
    def _parse_report_time(cls, value: object) -> object:
        if isinstance(value, str):
            match = _HH_MM.match(value.strip())
            if match is None:
                raise ValueError(f"{value!r} is not a time HH:MM (00:00 to 23:59)")
            return time(int(match[1]), int(match[2]))
        return value

    @field_validator("report_timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @field_validator("report_recipients", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            if not value:
                raise ValueError("at least one address is required")
            return [check_address(str(item)) for item in value]
        return value

    @field_validator("report_from")
    @classmethod
    def _check_from(cls, value: str) -> str:
        return check_address(value)

    @model_validator(mode="after")
    def _password_not_in_clear(self) -> Self:
        problem = smtp_auth_problem(
            self.smtp_username,
            encrypted=self.smtp_security is not SmtpSecurity.NONE,
            allow_plaintext=self.smtp_allow_plaintext_auth,
        )
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.report_timezone)
