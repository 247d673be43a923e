"""API settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from herald_api.security import DEFAULT_TOKEN_NAME, ApiToken, parse_named_tokens
from herald_common.safety import MIN_SECRET_LENGTH, is_loopback, secret_problem
from herald_common.settings import HeraldSettings


class ApiSettings(HeraldSettings):
    api_token: SecretStr = Field(
        description="Bearer token every /api/v1 call must carry: 32 or more random characters."
    )
    api_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="More tokens, each with a name for the logs: name=token,name2=token2; "
        "each 32 or more random characters.",
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

    # The admin UI (/admin): off unless an OIDC issuer is configured.
    oidc_issuer: str = Field(
        default="",
        description="OIDC issuer URL for the admin UI's login (Keycloak realm, Auth0 tenant, "
        "https://accounts.google.com); empty turns the admin UI off.",
    )
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_redirect_url: str = Field(
        default="",
        description="The callback URL registered at the provider (https://host/admin/auth); "
        "required with HERALD_OIDC_ISSUER: never derived from the request's Host header.",
    )
    oidc_scopes: str = "openid email profile"
    oidc_groups_claim: str = Field(
        default="groups", description="The claim listing the user's groups (or roles)."
    )
    admin_emails: str = Field(default="", description="E-mails allowed in, comma-separated.")
    admin_domains: str = Field(
        default="", description="E-mail domains allowed in, comma-separated (example.com)."
    )
    admin_groups: str = Field(default="", description="Groups allowed in, comma-separated.")
    admin_session_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Signs the admin session cookie: 32 or more random characters, the same "
        "on every API replica.",
    )
    admin_cookie_secure: bool = Field(
        default=True, description="Send the session cookie over HTTPS only (off for local HTTP)."
    )
    admin_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _check_admin(self) -> Self:
        if not self.oidc_issuer:
            return self
        issuer = urlsplit(self.oidc_issuer)
        # Keys and codes travel between Herald and the provider: plain http only on loopback.
        if issuer.scheme != "https" and not (
            issuer.scheme == "http" and is_loopback(issuer.hostname or "")
        ):
            raise ValueError(
                "HERALD_OIDC_ISSUER must be an https:// URL (http:// only for localhost)"
            )
        if "openid" not in self.oidc_scopes.split():
            raise ValueError("HERALD_OIDC_SCOPES must include openid (the ID token is the login)")
        # The redirect URI is never taken from the request: its Host header is the client's
        # to write, and a login's code must go back to Herald only.
        if not self.oidc_redirect_url:
            raise ValueError(
                "HERALD_OIDC_REDIRECT_URL is required with HERALD_OIDC_ISSUER: the callback "
                "registered at the provider, https://<api host>/admin/auth"
            )
        redirect = urlsplit(self.oidc_redirect_url)
        if redirect.scheme not in ("http", "https") or not redirect.hostname:
            raise ValueError(
                "HERALD_OIDC_REDIRECT_URL must be an absolute URL, https://<api host>/admin/auth"
            )
        if not redirect.path.endswith("/admin/auth"):
            raise ValueError("HERALD_OIDC_REDIRECT_URL must end with /admin/auth")
        if not self.oidc_client_id:
            raise ValueError("HERALD_OIDC_CLIENT_ID is required with HERALD_OIDC_ISSUER")
        if not self.admin_session_secret.get_secret_value():
            raise ValueError(
                f"HERALD_ADMIN_SESSION_SECRET is required with HERALD_OIDC_ISSUER: "
                f"{MIN_SECRET_LENGTH} or more random characters, the same on every replica"
            )
        if not (self.admin_emails or self.admin_domains or self.admin_groups):
            raise ValueError(
                "with HERALD_OIDC_ISSUER, set who may log in: HERALD_ADMIN_EMAILS, "
                "HERALD_ADMIN_DOMAINS or HERALD_ADMIN_GROUPS"
            )
        return self

    @property
    def admin_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @field_validator("api_token")
    @classmethod
    def _check_api_token(cls, value: SecretStr) -> SecretStr:
        problem = secret_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("api_tokens")
    @classmethod
    def _check_api_tokens(cls, value: SecretStr) -> SecretStr:
        for token in parse_named_tokens(value.get_secret_value()):
            problem = secret_problem(token.secret.decode())
            if problem is not None:
                raise ValueError(f"the token named {token.name!r} {problem}")
        return value

    @field_validator("admin_session_secret")
    @classmethod
    def _check_admin_session_secret(cls, value: SecretStr) -> SecretStr:
        # Checked whenever set: a placeholder left in a Secret is a sign of a copy not filled in.
        if value.get_secret_value():
            problem = secret_problem(value.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return value

    @property
    def tokens(self) -> list[ApiToken]:
        default = ApiToken(DEFAULT_TOKEN_NAME, self.api_token.get_secret_value().encode())
        return [default, *parse_named_tokens(self.api_tokens.get_secret_value())]

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]
