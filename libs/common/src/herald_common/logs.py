"""structlog set-up: one JSON object per line on stdout, with the service and replica names.

Lines about a mailing carry ``mailing_id``, about a message ``message_id``, ``mailing_id`` and
``client_id``, about a client ``client_id``; API lines carry ``request_id``. Secrets never
reach a line: known secret keys are redacted, and no code logs headers or settings.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import orjson
import structlog

SECRET_KEYS = frozenset(
    {"authorization", "token", "api_token", "provider_token", "password", "secret"}
)


def _drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in SECRET_KEYS.intersection(event):
        event[key] = "[redacted]"
    return event


def _dumps(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str)


def configure_logging(service: str, instance: str = "", level: str = "INFO") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _drop_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(file=sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        service=service, instance=instance or socket.gethostname()
    )
    # Libraries log through the standard library; route them into the same JSON stream.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
