"""API settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr

from herald_common.settings import HeraldSettings


class ApiSettings(HeraldSettings):
    api_token: SecretStr = Field(description="Bearer token every /api/v1 call must carry.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    import_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Largest file POST /api/v1/clients/import accepts (413 beyond).",
    )
