"""Request and response bodies of /clients."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from herald_api.validation import OperatorCode, Phone, Tag, TimeZone


class ClientCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"phone": "79001234567", "tag": "vip", "timezone": "Europe/Moscow"}]
        },
    )

    phone: Phone
    operator_code: OperatorCode | None = None
    tag: Tag = ""
    timezone: TimeZone


class ClientUpdate(BaseModel):
    """Only the fields given change. A new phone without an operator code re-derives the code."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tag": "churned"}]})

    phone: Phone | None = None
    operator_code: OperatorCode | None = None
    tag: Tag | None = None
    timezone: TimeZone | None = None


class ClientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    phone: str
    operator_code: str
    tag: str
    timezone: str
    created_at: datetime
    updated_at: datetime
