"""Hand one message to the configured SMTP server (aiosmtplib)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from herald_reporter.settings import ReporterSettings, SmtpSecurity


async def deliver(message: EmailMessage, settings: ReporterSettings) -> list[str]:
    """Send ``message`` to its To: addresses; returns those the server refused (some may be).

    Raises aiosmtplib's errors (every recipient refused, authentication, TLS) and OSError or
    TimeoutError when the server is unreachable or too slow.
    """
    password = settings.smtp_password.get_secret_value()
    refused, _ = await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=password if settings.smtp_username else None,
        use_tls=settings.smtp_security is SmtpSecurity.TLS,
        # False, not None: with "none" aiosmtplib would otherwise upgrade whenever it can.
        start_tls=settings.smtp_security is SmtpSecurity.STARTTLS,
        timeout=settings.smtp_timeout_s,
        cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )
    return sorted(refused)
