"""Issued tokens are accepted by a verifier with the same secret and nothing else."""

from __future__ import annotations

from herald_provider_sim.tokens import TokenVerifier, make_token

SECRET = "token-test-secret-of-a-decent-length-0123"


def test_issued_token_verifies_repeatedly() -> None:
    verifier = TokenVerifier(SECRET)
    header = f"Bearer {make_token(SECRET, ttl_s=60)}"

    assert verifier.verify(header)
    assert verifier.verify(header)
    assert verifier.verify(header.replace("Bearer", "bearer"))


def test_wrong_secret_expired_or_missing_token_is_refused() -> None:
    verifier = TokenVerifier(SECRET)

    assert not verifier.verify(f"Bearer {make_token('another-secret-of-a-decent-length-01234')}")
    assert not verifier.verify(f"Bearer {make_token(SECRET, ttl_s=-60)}")
    assert not verifier.verify(None)
    assert not verifier.verify(make_token(SECRET))


def test_short_development_secret_works_without_warnings() -> None:
    token = make_token("herald-dev-secret")

    assert TokenVerifier("herald-dev-secret").verify(f"Bearer {token}")
