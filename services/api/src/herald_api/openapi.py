"""What the OpenAPI document says about every route, by construction: short operation ids and
the tags' descriptions (client generators name their functions and modules after them)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from herald_api.errors import ValidationErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"


def operation_id(route: APIRoute) -> str:
    """The route's name, its function's name by default (``create_client``), instead of
    FastAPI's name, path and method joined (``create_client_api_v1_clients_post``).
    services/api/tests/test_openapi.py checks that they are unique and snake_case."""
    return route.name


TAGS: list[dict[str, Any]] = [
    {"name": "clients", "description": "The client directory, one client at a time or in bulk."},
    {
        "name": "mailings",
        "description": "Mailings, their controls (pause, resume, retry), messages and statistics.",
    },
    {"name": "health", "description": "Liveness and readiness probes; no token needed."},
]


# FastAPI describes every 422 with its own HTTPValidationError, whose entries carry `input`
# and `ctx` that Herald's answers never have (errors.handle_validation_error) and that
# openapi-generator cannot type; the document names Herald's own shape instead.
FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def _replace_refs(node: object, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for value in node.values():
            _replace_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, old, new)


def install_openapi(app: FastAPI) -> None:
    """``app.openapi()`` with every 422 described by ``ValidationErrorBody``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            body = ValidationErrorBody.model_json_schema(ref_template=REF_TEMPLATE)
            schemas.update(body.pop("$defs", {}))
            schemas[ValidationErrorBody.__name__] = body
            ours = REF_TEMPLATE.format(model=ValidationErrorBody.__name__)
            _replace_refs(document["paths"], FASTAPI_422, ours)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
