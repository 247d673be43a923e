"""A local SMTP server keeping every mail it receives: `make run`'s mailbox, and the tests'.

Mail is kept in memory (``received``) and, given a directory, written there as one ``.eml``
file per message, which any mail client opens.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from herald_devstack.probes import LOCALHOST


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    path: Path | None  # the .eml file, when the sink writes them


class MailSink:
    """The aiosmtpd handler: accepts everything and keeps it."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.received: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        raw = content.encode() if isinstance(content, str) else bytes(content or b"")
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        path = self._write(raw) if self.directory is not None else None
        with self._lock:
            self.received.append(
                ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), message, path)
            )
        return "250 Message accepted for delivery"

    def _write(self, raw: bytes) -> Path:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{next(self._sequence):04d}.eml"
        # Written aside and renamed, so that a reader never opens half a message.
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(raw)
        partial.rename(path)
        return path


class SmtpSink:
    """aiosmtpd's Controller (its own thread and event loop) on ``host:port`` around a MailSink.

    ``smtp_options`` go to aiosmtpd's SMTP: ``tls_context``, ``require_starttls``,
    ``auth_required``, ``authenticator``, …
    """

    def __init__(
        self,
        port: int,
        directory: Path | None = None,
        host: str = LOCALHOST,
        **smtp_options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.sink = MailSink(directory)
        self._controller = Controller(self.sink, hostname=host, port=port, **smtp_options)
        self._running = False

    @property
    def received(self) -> list[ReceivedMail]:
        return list(self.sink.received)

    def start(self) -> SmtpSink:
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float) -> list[ReceivedMail]:
        """At least ``count`` mails, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.sink.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(self.sink.received)} mail(s) received within {timeout} s, "
                    f"expected {count}"
                )
            time.sleep(0.05)
        return self.received
