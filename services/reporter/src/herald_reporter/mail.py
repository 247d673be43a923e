"""The report e-mail: plain text and HTML (auto-escaped: mailing texts are user input)."""

from __future__ import annotations

from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from herald_common.statuses import ALL_STATUSES, MessageStatus
from herald_reporter.statistics import MailingLine, ReportStats

STATUSES = tuple(status.value for status in ALL_STATUSES)
TEXT_WIDTH = 40  # of a mailing's text in the plain-text table

_env = Environment(
    loader=PackageLoader("herald_reporter", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def _one_line(value: str, width: int) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _text_header() -> str:
    return "  ".join([f"{'mailing':>8}", f"{'total':>8}", *(f"{s:>9}" for s in STATUSES), "text"])


def _text_row(m: MailingLine) -> str:
    label = f"{m.id}{'*' if m.deleted else ''}"
    counts = (f"{m.by_status[s]:>9}" for s in STATUSES)
    return "  ".join([f"{label:>8}", f"{m.total:>8}", *counts, _one_line(m.text, TEXT_WIDTH)])


def render(
    day: date,
    zone: ZoneInfo,
    window_start_at: datetime,
    window_end_at: datetime,
    stats: ReportStats,
    generated_at: datetime,
) -> tuple[str, str]:
    """The plain-text and the HTML body."""

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    env = _env.overlay()
    env.filters["local"] = local
    hours = round((window_end_at - window_start_at).total_seconds() / 3600, 2)
    context = {
        "day": day.isoformat(),
        "zone": zone.key,
        "window_start": local(window_start_at),
        "window_end": local(window_end_at),
        "hours": int(hours) if hours.is_integer() else hours,
        "generated": local(generated_at),
        "stats": stats,
        "statuses": STATUSES,
        "header": _text_header(),
        "rows": [_text_row(m) for m in stats.mailings],
        "any_deleted": any(m.deleted for m in stats.mailings),
    }
    text = env.get_template("report.txt").render(context)
    html = env.get_template("report.html").render(context)
    return text, html


def compose(
    *,
    day: date,
    zone: ZoneInfo,
    stats: ReportStats,
    text: str,
    html: str,
    sender: str,
    recipients: list[str],
    message_id: str,
    now: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = (
        f"Herald daily report {day.isoformat()}: {stats.mailing_count} mailings, "
        f"{stats.by_status[MessageStatus.SENT]} of {stats.total} messages sent"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now.astimezone(zone))
    message["Message-ID"] = message_id
    message["X-Herald-Report-Day"] = day.isoformat()
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
