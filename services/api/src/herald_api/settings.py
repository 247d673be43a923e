"""API settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

from herald_common.settings import HeraldSettings
from pydantic import Field, SecretStr


class ApiSettings(HeraldSettings):
    api_token: SecretStr = Field(description="Bearer token every /api/v1 call must carry.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
