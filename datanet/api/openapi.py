"""The OpenAPI 3.1 document of the control API, generated from :data:`OPERATIONS`.

Invariant: the document describes exactly the routes :mod:`datanet.api.app` serves,
with the same request schemas that :func:`datanet.api.routes.check_args` enforces,
because both read the one table in :mod:`datanet.api.routes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datanet.api.metrics import METRICS_PATH
from datanet.api.routes import API_PREFIX, NDJSON, OPERATIONS, Operation

__all__ = ["OPENAPI_PATH", "openapi_document"]

OPENAPI_PATH = f"{API_PREFIX}/openapi.json"

_ERROR_STATUSES = {
    "400": "Malformed request or invalid input",
    "401": "Missing or wrong bearer token; nothing was done",
    "404": "Unknown endpoint, or the record/peer was not found",
    "405": "Wrong HTTP method",
    "413": "Request body or record too large",
    "415": "Wrong Content-Type",
    "422": "A signature, certificate or freshness check failed",
    "429": "Rate limited",
    "500": "Node-side failure (storage, keystore, bug)",
    "502": "A peer or the network failed",
    "504": "Timed out",
}

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {
                    "type": "string",
                    "description": "stable machine-readable code (DatanetError.code)",
                },
                "message": {"type": "string", "description": "for humans"},
            },
        }
    },
}


def _request_body(op: Operation) -> dict[str, Any]:
    if op.body == "octet-stream":
        return {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    properties: dict[str, Any] = {}
    for f in op.fields:
        prop = {**f.schema, "description": f.help}
        if not f.required:
            prop["default"] = f.default
            if f.default is None and "type" in prop:
                prop["type"] = [prop["type"], "null"]
        properties[f.name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [f.name for f in op.fields if f.required]
    if required:
        schema["required"] = required
    return {"required": bool(required), "content": {"application/json": {"schema": schema}}}


def _query_parameters(op: Operation) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "in": "query",
            "required": f.required,
            "description": f.help,
            "schema": {**f.schema, **({} if f.required else {"default": f.default})},
        }
        for f in op.fields
    ]


def _operation(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": op.summary,
            "content": {"application/json": {"schema": dict(op.response)}},
        }
    }
    for status in _ERROR_STATUSES:
        responses[status] = {"$ref": f"#/components/responses/E{status}"}
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "requestBody": _request_body(op),
        "responses": responses,
    }
    if op.description:
        doc["description"] = op.description
    if op.body == "octet-stream" and op.fields:
        doc["parameters"] = _query_parameters(op)
    return doc


def _stream_operation(op: Operation, method: str) -> dict[str, Any]:
    """A server-sent events operation: POST with a JSON body, or GET with query parameters."""
    doc = _operation(op)
    doc["operationId"] = f"{op.operation_id}_{method}"
    doc["responses"]["200"] = {
        "description": f"{op.summary}: `event: <kind>` and `data: <JSON>` per event",
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                "x-event-data": dict(op.response),
            }
        },
    }
    if method == "get":
        del doc["requestBody"]
        doc["parameters"] = _query_parameters(op)
    return doc


def _lines_operation(op: Operation) -> dict[str, Any]:
    """A JSON Lines operation: POST with a JSON body, one object per line back."""
    doc = _operation(op)
    doc["responses"]["200"] = {
        "description": f"{op.summary}: one JSON object per line",
        "content": {NDJSON: {"schema": {"type": "string"}, "x-line": dict(op.response)}},
    }
    return doc


def _path_item(op: Operation) -> dict[str, Any]:
    if op.lines is not None:
        return {"post": _lines_operation(op)}
    if op.stream is None:
        return {"post": _operation(op)}
    return {"get": _stream_operation(op, "get"), "post": _stream_operation(op, "post")}


def openapi_document(operations: Sequence[Operation] = OPERATIONS) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document as a JSON-safe dict."""
    paths: dict[str, Any] = {f"{API_PREFIX}{op.path}": _path_item(op) for op in operations}
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document (no token needed)",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "the OpenAPI document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    paths[METRICS_PATH] = {
        "get": {
            "operationId": "metrics",
            "summary": "The node's metrics in the Prometheus text format (token unless "
            "metrics.public)",
            "tags": ["meta"],
            "responses": {
                "200": {
                    "description": "every metric family (docs/operators.md, Metrics)",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": {"$ref": "#/components/responses/E401"},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "datanet control API",
            "version": "0",
            "description": "Control API of a datanet node daemon. Every endpoint is POST "
            "with a JSON object body (empty body = {}) and needs `Authorization: Bearer "
            "<token>`; the token is in the file `api.token` in the node's data directory. "
            'Errors are `{"error": {"code", "message"}}`. `catalog/watch` answers with '
            "server-sent events and also takes GET with query parameters; `audit/export` "
            "answers with JSON Lines (application/x-ndjson). The octet-stream "
            "endpoints (`publish`, `access/grants/verify`) take their options as query "
            "parameters.",
        },
        "servers": [{"url": "http://127.0.0.1:5080"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR_SCHEMA},
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for status, text in _ERROR_STATUSES.items()
            },
        },
    }
