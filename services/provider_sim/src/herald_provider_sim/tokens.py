"""HS256 bearer tokens: issuing them for clients and verifying them cheaply on the hot path."""

from __future__ import annotations

import time
import warnings

import jwt

ALGORITHM = "HS256"
# Clocks of the simulator and its clients may differ slightly.
_LEEWAY_S = 5
# The sender reuses a handful of tokens; beyond this the cache is simply rebuilt.
_CACHE_SIZE = 256


def make_token(secret: str, subject: str = "herald", ttl_s: int | None = None) -> str:
    """Issue a HS256 JWT that a simulator started with `secret` accepts."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": subject, "iat": now}
    if ttl_s is not None:
        claims["exp"] = now + ttl_s
    with warnings.catch_warnings():
        # Development secrets such as the default one are shorter than RFC 7518 recommends.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=ALGORITHM)


class TokenVerifier:
    """Checks `Authorization` header values, remembering good tokens until they expire."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        # Decoding a JWT costs tens of microseconds; the same token arrives thousands of times.
        self._valid_until: dict[str, float] = {}

    def verify(self, authorization: str | None) -> bool:
        if authorization is None or authorization[:7].lower() != "bearer ":
            return False
        token = authorization[7:].strip()
        valid_until = self._valid_until.get(token)
        if valid_until is not None:
            if time.time() < valid_until:
                return True
            del self._valid_until[token]
            return False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], leeway=_LEEWAY_S)
        except jwt.PyJWTError:
            return False
        exp = claims.get("exp")
        if len(self._valid_until) >= _CACHE_SIZE:
            self._valid_until.clear()
        self._valid_until[token] = (
            float(exp) + _LEEWAY_S if isinstance(exp, int | float) else float("inf")
        )
        return True
