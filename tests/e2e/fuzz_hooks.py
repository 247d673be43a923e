"""Schemathesis hooks for the fuzz test: how to put generated values into an NDJSON body.

Loaded by the ``st`` process through ``SCHEMATHESIS_HOOKS``; not a test module.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_ctx: Any, value: Any) -> bytes:
    """Bytes as given (the documented body is a binary string); anything else, one JSON
    value per line, as an integrator's file would hold them."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)
