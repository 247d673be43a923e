"""Mailings, their messages and statistics."""
