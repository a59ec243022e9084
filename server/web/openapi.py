"""The OpenAPI 3.1 description of the site's JSON API."""

from __future__ import annotations

from typing import Any

__all__ = ["document"]

_ERROR = {
    "type": "object",
    "required": ["error", "message", "detail"],
    "properties": {
        "error": {"type": "string", "description": "stable code, e.g. not-found"},
        "message": {"type": "string", "description": "what happened, in Chinese"},
        "detail": {"type": "string"},
    },
}

_CHECK = {
    "type": "object",
    "required": ["name", "outcome", "detail"],
    "properties": {
        "name": {"type": "string"},
        "outcome": {"enum": ["passed", "failed", "indeterminate", "skipped"]},
        "detail": {"type": "string"},
    },
}

_REPORT = {
    "type": "object",
    "description": "The verification report, exactly as `tongban verify --json` prints it.",
    "required": ["indication", "sub_indication", "summary", "checks", "verified_at"],
    "properties": {
        "indication": {"enum": ["VALID", "INVALID", "INDETERMINATE"]},
        "sub_indication": {"type": ["string", "null"]},
        "summary": {"type": "string"},
        "format": {"type": "string"},
        "verified_at": {"type": "string", "format": "date-time"},
        "signing_time": {"type": ["string", "null"], "format": "date-time"},
        "signer": {"type": ["object", "null"]},
        "ecert_identifier": {"type": ["string", "null"]},
        "ecert_status": {"enum": ["valid", "revoked", "cancelled", "expired", None]},
        "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
    },
}

_ECERT = {
    "type": "object",
    "required": ["identifier", "report"],
    "properties": {
        "identifier": {"type": "string"},
        "type_code": {"type": "string"},
        "issuer_uscc": {"type": "string"},
        "source": {"type": "string"},
        "document": {"type": "object"},
        "status": {"type": ["object", "null"]},
        "seal": {"type": ["object", "null"]},
        "report": {"$ref": "#/components/schemas/Report"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {str(c): {"description": _WHY[c], "content": ref} for c in codes}


_WHY = {
    400: "malformed identifier, or an upload that is empty or not a PDF without its .p7s",
    404: "this node did not issue the identifier",
    413: "the upload is above the size limit",
    429: "too many requests from this address; retry after a minute",
    503: "the records cannot be read now; nothing was decided",
}


def document(max_upload_bytes: int) -> dict[str, Any]:
    """The OpenAPI document, with the configured upload limit stated."""
    upload = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["document"],
                "properties": {
                    "document": {"type": "string", "format": "binary"},
                    "seal": {
                        "type": "string",
                        "format": "binary",
                        "description": "the detached .p7s, for a document that is not a PDF",
                    },
                },
            }
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tongban verification API", "version": "1"},
        "paths": {
            "/api/v1/ecerts/{identifier}": {
                "get": {
                    "summary": "An e-certificate's records, current status and report",
                    "parameters": [
                        {
                            "name": "identifier",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 128},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the records and the report over them",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ECert"}
                                }
                            },
                        },
                        **_errors(400, 404, 429, 503),
                    },
                }
            },
            "/api/v1/verify": {
                "post": {
                    "summary": "Verify a sealed PDF, or a file with its .p7s; nothing is kept",
                    "description": f"Uploads above {max_upload_bytes} bytes are refused.",
                    "requestBody": {"required": True, "content": upload},
                    "responses": {
                        "200": {
                            "description": "the verification report",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Report"}
                                }
                            },
                        },
                        **_errors(400, 413, 429, 503),
                    },
                }
            },
        },
        "components": {
            "schemas": {"Error": _ERROR, "Check": _CHECK, "Report": _REPORT, "ECert": _ECERT}
        },
    }
