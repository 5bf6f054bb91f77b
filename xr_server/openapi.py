"""``GET /api/openapi.json``: the OpenAPI 3.1 document of the server, built by `apispec`.

Each route documents itself: the YAML after ``---`` in its view's docstring is its operation
(apispec-webframeworks' `FlaskPlugin` finds the URL rule of the view). The component schemas come
from the pydantic models of `xr_server.api_models` and from the ``twin_state`` JSON Schema
(`xr_server/twin_schema.json`, JSON Schema 2020-12, the dialect of OpenAPI 3.1), so the document
cannot drift from what the server validates and sends. Built once per app, after every route is
registered; a route under ``/api/`` without a documented operation is a test failure
(`tests/xr_server/test_openapi.py`).
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import flask
from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from pydantic import BaseModel

from xr_server.api_models import MODELS
from xr_server.program_events import PROGRAM_MODELS
from xr_server.robot_events import ROBOT_MODELS

OPENAPI_VERSION = "3.1.0"
TWIN_SCHEMA_PATH = Path(__file__).resolve().parent / "twin_schema.json"
_REF_PREFIX = "#/components/schemas/"

#: Paths outside ``/api/`` that the document also describes.
EXTRA_PATHS = ("/healthz", "/metrics")

_ERROR_JSON = {"application/json": {"schema": {"$ref": _REF_PREFIX + "Error"}}}
#: Shared responses, referred to by name from the operations (``401: Unauthorized``).
RESPONSES = {
    "BadRequest": "The body is not what the operation expects; `error` names the field.",
    "Unauthorized": ("No token, or a token that is forged, expired or revoked, or whose user was removed; "
                     "`error` says which (`missing token`, `invalid or expired token`, `token revoked`, "
                     "`token of a removed user`, ...)."),
    "Forbidden": "The caller's roles do not allow this; `error` names the roles needed.",
    "NotFound": "No such resource; `error` names it.",
    "Unavailable": "The server has nothing to answer with yet; `error` says what is missing.",
}


def _version() -> str:
    try:
        return importlib.metadata.version("xrcell")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _rewrite_refs(node: Any, mapping: dict[str, str]) -> Any:
    """`node` with every ``$ref`` value replaced through `mapping` (unknown refs left alone)."""
    if isinstance(node, dict):
        return {k: (mapping.get(v, v) if k == "$ref" and isinstance(v, str) else _rewrite_refs(v, mapping))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, mapping) for v in node]
    return node


def hoist_defs(name: str, schema: dict) -> dict[str, dict]:
    """A standalone JSON Schema as OpenAPI components: `name` for the root, ``<name>_<def>`` for
    each of its ``$defs``, with the ``#/$defs/...`` references rewritten to the components.

    Returns:
        component name -> schema.
    """
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    mapping = {f"#/$defs/{d}": f"{_REF_PREFIX}{name}_{d}" for d in defs}
    out = {name: _rewrite_refs(schema, mapping)}
    for d, sub in defs.items():
        out[f"{name}_{d}"] = _rewrite_refs(sub, mapping)
    return out


def model_components(model: type[BaseModel]) -> dict[str, dict]:
    """The JSON Schema of a pydantic model as components (nested models become their own)."""
    schema = model.model_json_schema(ref_template=_REF_PREFIX + "{model}")
    defs = schema.pop("$defs", {})
    return {model.__name__: schema, **defs}


def build_openapi(app: flask.Flask, *, cookie_name: str) -> dict:
    """The OpenAPI 3.1 document of every ``/api/`` route of `app` and of `EXTRA_PATHS`.

    Args:
        app: the Flask app with every route registered.
        cookie_name: the session cookie (documented as a security scheme).

    Returns:
        The document as a JSON-ready dict.
    """
    spec = APISpec(
        title="xrcell XR server", version=_version(), openapi_version=OPENAPI_VERSION, plugins=[FlaskPlugin()],
        info={"description": (
            "REST API of the xrcell XR server. Every route needs a session token from `POST /api/login`, "
            "sent as `Authorization: Bearer <token>` or as the session cookie, except those whose "
            "`security` is empty. Every error is JSON `{\"error\": message}`. Live data (the twin at "
            "30 Hz) travels over Socket.IO, namespace `/xr`; see docs/xr_server.md.")},
        security=[{"bearerAuth": []}, {"cookieAuth": []}],
    )
    components: dict[str, dict] = {}
    for model in (*MODELS, *ROBOT_MODELS, *PROGRAM_MODELS):
        components.update(model_components(model))
    components.update(hoist_defs("TwinState", json.loads(TWIN_SCHEMA_PATH.read_text())))
    for name, schema in components.items():
        spec.components.schema(name, schema)
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer",
        "description": "The `token` of `POST /api/login` (signed, expires after `expires_s`)."})
    spec.components.security_scheme("cookieAuth", {
        "type": "apiKey", "in": "cookie", "name": cookie_name,
        "description": "The same token as an HttpOnly, SameSite=Strict cookie, set by `POST /api/login`."})
    for name, description in RESPONSES.items():
        spec.components.response(name, {"description": description, "content": _ERROR_JSON})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.rule.startswith("/api/") or rule.rule in EXTRA_PATHS:
            spec.path(view=app.view_functions[rule.endpoint], app=app)
    return spec.to_dict()
