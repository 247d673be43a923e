"""Who may use the admin UI, judged from an OIDC identity's claims; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def split_list(raw: str) -> frozenset[str]:
    return frozenset(item.strip().lower() for item in raw.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    emails: frozenset[str]
    domains: frozenset[str]
    groups: frozenset[str]
    groups_claim: str = "groups"

    @classmethod
    def parse(cls, emails: str, domains: str, groups: str, groups_claim: str) -> AccessPolicy:
        return cls(
            split_list(emails),
            frozenset(d.lstrip("@") for d in split_list(domains)),
            split_list(groups),
            groups_claim,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str


def judge(policy: AccessPolicy, claims: Mapping[str, Any]) -> Verdict:
    """Allowed when the verified e-mail is listed, its domain is, or one of the groups is.

    An e-mail counts only when the provider says it is verified (``email_verified``): at some
    providers users can set any address on their account, and a missing claim proves
    nothing. Keycloak, Auth0 and Google send the claim."""
    raw_email = claims.get("email")
    email = raw_email.strip().lower() if isinstance(raw_email, str) else ""
    verified = claims.get("email_verified") in (True, "true")
    if email and verified:
        if email in policy.emails:
            return Verdict(True, "e-mail listed")
        if email.rpartition("@")[2] in policy.domains:
            return Verdict(True, "domain listed")
    groups = claims.get(policy.groups_claim)
    if isinstance(groups, str):
        groups = [groups]
    if isinstance(groups, list | tuple):
        names = {str(g).strip().lower() for g in groups}
        if names & policy.groups:
            return Verdict(True, "group listed")
    listed = email in policy.emails or email.rpartition("@")[2] in policy.domains
    if email and not verified and listed:
        return Verdict(False, f"the e-mail {email} is not verified by the identity provider")
    return Verdict(False, f"{email or 'this account'} is not allowed to use Herald's admin")


def safe_next(target: str | None, default: str = "/admin/") -> str:
    """Where to go after login: only a path inside the admin UI, never another site
    (``//evil.example``, ``/\\evil``, ``https://…`` are refused)."""
    if not target or not target.startswith("/admin"):
        return default
    if target.startswith(("//", "/\\")) or "\\" in target or "\r" in target or "\n" in target:
        return default
    return target
