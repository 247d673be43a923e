"""What `herald-dev` prints once the system is up."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path


def render_banner(
    *,
    api_url: str,
    api_token: str,
    provider_url: str,
    simulator_url: str | None,
    management_url: str | None,
    log_dir: Path,
    database_url: str | None = None,
    mail_dir: Path | None = None,
    admin_login: str | None = None,
) -> str:
    token = shlex.quote(f"Authorization: Bearer {api_token}")
    body = shlex.quote('{"phone": "79001234567", "tag": "demo", "timezone": "Europe/Moscow"}')
    rows = [
        ("API", f"{api_url}/api/v1"),
        ("Swagger UI", f"{api_url}/docs/"),
        ("Admin UI", f"{api_url}/admin/  ({admin_login or 'off: set HERALD_OIDC_ISSUER'})"),
        ("API token", api_token),
        ("Provider", provider_url),
    ]
    if simulator_url is not None:
        rows.append(("Simulator", f"{simulator_url}/_sim/  (fault controls)"))
    if database_url is not None:
        rows.append(("PostgreSQL", f"psql {database_url}"))
    if management_url is not None:
        rows.append(("RabbitMQ UI", f"{management_url}/  (guest / guest)"))
    rows.append(("Logs", f"{log_dir}/"))
    if mail_dir is not None:
        rows.append(("Mail", f"{mail_dir}/  (the daily report, one .eml file per mail)"))
    width = max(len(label) for label, _ in rows)
    lines = ["", "Herald is running.", *(f"  {label:<{width}}  {value}" for label, value in rows)]
    lines += [
        "",
        "Try it:",
        f"  curl -s -X POST -H {token} -H 'Content-Type: application/json' \\",
        f"       -d {body} {api_url}/api/v1/clients",
        f"  curl -s -H {token} {api_url}/api/v1/mailings/stats",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def render_exports(env: Mapping[str, str]) -> str:
    """`export NAME=value` lines, quoted for a POSIX shell."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())
