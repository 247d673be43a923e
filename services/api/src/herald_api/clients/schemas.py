"""Request and response bodies of /clients."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from herald_api.pagination import Page
from herald_api.validation import Omittable, OperatorCode, Phone, Tag, TimeZone


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
    """Only the fields given change; none may be null. A new phone without an operator code
    re-derives the code."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tag": "churned"}]})

    phone: Omittable[Phone] = None
    operator_code: Omittable[OperatorCode] = None
    tag: Omittable[Tag] = None
    timezone: Omittable[TimeZone] = None


class ClientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    phone: str
    operator_code: str
    tag: str
    timezone: str
    created_at: datetime
    updated_at: datetime


class ClientPage(Page[ClientRead]):
    """A page of clients, by id."""


class ClientImportResult(BaseModel):
    """What a bulk import did; `created + updated + skipped == total`."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"created": 2, "updated": 1, "skipped": 0, "total": 3}]}
    )

    created: int
    updated: int
    skipped: int
    total: int


class ImportRowError(BaseModel):
    line: int = Field(description="Line in the file, counted from 1 (the CSV header is line 1).")
    field: str | None = Field(
        description="The column or key at fault; null when the whole line is (e.g. bad JSON)."
    )
    reason: str


class InvalidImportBody(BaseModel):
    """422: the file was refused as a whole; nothing was written."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "2 errors in the file; nothing was imported",
                    "code": "invalid_rows",
                    "error_count": 2,
                    "errors": [
                        {
                            "line": 3,
                            "field": "phone",
                            "reason": "String should match pattern '^7[0-9]{10}$'",
                        },
                        {"line": 9, "field": "phone", "reason": "79001234567 is also on line 2"},
                    ],
                }
            ]
        }
    )

    detail: str
    code: str
    error_count: int = Field(description="How many errors the file has in all.")
    errors: list[ImportRowError] = Field(description="The first 100 errors, by line.")


class ExistingPhonesBody(BaseModel):
    """409 with `on_duplicate=reject`: phones of the file that live clients already have."""

    detail: str
    code: str
    existing_count: int = Field(description="How many phones of the file already exist.")
    phones: list[str] = Field(description="The first 100 of them, in file order.")
