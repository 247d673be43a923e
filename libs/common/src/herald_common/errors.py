"""The one error tree of Herald; the API maps it to HTTP in a single handler.

HeraldError
├── NotFound            an entity id that does not exist (or was deleted)   → 404
├── Conflict            the request contradicts the current state           → 409
│   ├── DuplicatePhone  another live client already has this phone
│   ├── MailingStarted  a started mailing's filter or start cannot change
│   └── MailingEnded    a mailing whose end has passed cannot change
└── InvalidInput        a value that passed the schema but breaks a rule    → 422
    └── IdempotencyKeyReused  an Idempotency-Key sent again with another request
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class HeraldError(Exception):
    """Base of every expected business error."""

    code = "error"
    # An HTTP status for errors outside the tree's usual mapping (e.g. 413, 415); None: mapped.
    status_code: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, Any]:
        """Fields added to the error body beside ``detail`` and ``code``."""
        return {}


class NotFound(HeraldError):
    code = "not_found"

    def __init__(self, entity: str, entity_id: int) -> None:
        super().__init__(f"{entity} {entity_id} does not exist")
        self.entity = entity
        self.entity_id = entity_id


class Conflict(HeraldError):
    code = "conflict"


class DuplicatePhone(Conflict):
    code = "duplicate_phone"

    def __init__(self, phone: str) -> None:
        super().__init__(f"a client with phone {phone} already exists")
        self.phone = phone


class MailingStarted(Conflict):
    code = "mailing_started"

    def __init__(self, mailing_id: int, fields: list[str]) -> None:
        names = ", ".join(fields)
        super().__init__(f"mailing {mailing_id} has started: {names} can no longer change")
        self.mailing_id = mailing_id
        self.fields = fields


class MailingEnded(Conflict):
    code = "mailing_ended"

    def __init__(self, mailing_id: int, ends_at: datetime) -> None:
        super().__init__(
            f"mailing {mailing_id} ended at {ends_at.isoformat()}: it can no longer be changed "
            "(its messages are settled against that end; create a new mailing instead)"
        )
        self.mailing_id = mailing_id


class InvalidInput(HeraldError):
    code = "invalid_input"

    def __init__(self, field: str, reason: str, location: str = "body") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.location = location  # body, query or header: the start of the 422's ``loc``


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            "Idempotency-Key",
            f"{key!r} was used for a different request; send a new key for a new request",
            location="header",
        )
        self.key = key
