"""API settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from herald_api.security import DEFAULT_TOKEN_NAME, ApiToken, parse_named_tokens
from herald_common.settings import HeraldSettings


class ApiSettings(HeraldSettings):
    api_token: SecretStr = Field(description="Bearer token every /api/v1 call must carry.")
    api_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="More tokens, each with a name for the logs: name=token,name2=token2.",
    )
    cors_origins: str = Field(
        default="",
        description="Origins allowed to call the API from a browser, comma-separated; "
        "none (CORS closed) by default.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body outside the bulk import (413 beyond).",
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    import_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Largest file POST /api/v1/clients/import accepts (413 beyond).",
    )

    @field_validator("api_tokens")
    @classmethod
    def _check_api_tokens(cls, value: SecretStr) -> SecretStr:
        parse_named_tokens(value.get_secret_value())
        return value

    @property
    def tokens(self) -> list[ApiToken]:
        default = ApiToken(DEFAULT_TOKEN_NAME, self.api_token.get_secret_value().encode())
        return [default, *parse_named_tokens(self.api_tokens.get_secret_value())]

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]
