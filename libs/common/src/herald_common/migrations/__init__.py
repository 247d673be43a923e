"""Alembic migrations of Herald's schema."""
