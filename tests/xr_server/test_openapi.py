"""The OpenAPI document: complete (every /api/ rule and method of the real app), valid OpenAPI 3.1,
and true to what the server answers."""

import json

import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews
from xr_server.app import COOKIE_NAME, create_app
from xr_server.openapi import hoist_defs


@pytest.fixture
def app(make_store):
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(),
                        user_store=make_store(ana=("s3cret", ["operator"])), secret_key=SECRET, cell_name="lab")
    yield app
    app.xrcell_stop()


@pytest.fixture
def doc(app):
    response = app.test_client().get("/api/openapi.json")  # no token needed
    assert response.status_code == 200
    return response.get_json()


def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises OpenAPIValidationError with the path of the first problem


def test_the_validator_would_catch_a_broken_document(doc):
    doc["paths"]["/api/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {"type": 7}
    with pytest.raises(Exception, match="7"):
        validate(doc)


def test_every_api_rule_and_method_is_documented(app, doc):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/")]
    assert len(rules) >= 8
    for rule in rules:
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = doc["paths"][path].get(method.lower())
            assert operation is not None, f"{method} {path}"
            assert operation["summary"] and operation["responses"], f"{method} {path}"


def test_protected_routes_use_the_bearer_and_cookie_schemes_and_document_401(doc):
    assert doc["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "description": schemes["bearerAuth"]["description"]}
    assert schemes["cookieAuth"]["in"] == "cookie" and schemes["cookieAuth"]["name"] == COOKIE_NAME
    public = {("/api/login", "post"), ("/api/logout", "post"), ("/api/openapi.json", "get"),
              ("/healthz", "get"), ("/metrics", "get")}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if (path, method) in public:
                assert operation["security"] == [], (path, method)
            else:
                assert "security" not in operation, (path, method)  # the global requirement applies
                assert operation["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}


def test_error_responses_have_the_error_shape(doc):
    error = {"$ref": "#/components/schemas/Error"}
    for name, response in doc["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == error, name
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


def resolve(doc, schema):
    """A JSON Schema validator for `schema` that resolves the document's component refs."""
    root = {"components": doc["components"], **schema}
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("post", "/api/login", {"json": {"username": "ana", "password": "s3cret"}}, "200"),
    ("post", "/api/login", {"json": {"username": "ana"}}, "400"),
    ("post", "/api/login", {"json": {"username": "ana", "password": "nope"}}, "401"),
    ("get", "/api/me", {}, "401"),
])
def test_answers_match_their_documented_schema(app, doc, method, path, kwargs, status):
    response = getattr(app.test_client(), method)(path, **kwargs)
    assert str(response.status_code) == status
    documented = doc["paths"][path][method]["responses"][status]
    if "$ref" in documented:
        documented = doc["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    resolve(doc, documented["content"]["application/json"]["schema"]).validate(response.get_json())


def test_logged_in_answers_match_their_schemas(app, doc):
    client = app.test_client()
    client.post("/api/login", json={"username": "ana", "password": "s3cret"})
    for path in ("/api/me", "/api/twin", "/api/cameras"):
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        resolve(doc, schema).validate(client.get(path).get_json())
    schema = doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    resolve(doc, schema).validate(client.get("/healthz").get_json())
    schema = doc["paths"]["/api/logout"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    resolve(doc, schema).validate(client.post("/api/logout").get_json())


def test_the_twin_schema_is_hoisted_with_its_references_rewritten():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:x", "type": "object",
              "properties": {"p": {"$ref": "#/$defs/point"}, "q": {"items": {"$ref": "#/$defs/pair"}}},
              "$defs": {"point": {"type": "array"}, "pair": {"items": {"$ref": "#/$defs/point"}}}}
    out = hoist_defs("Twin", schema)
    assert set(out) == {"Twin", "Twin_point", "Twin_pair"}
    assert "$schema" not in out["Twin"] and "$id" not in out["Twin"] and "$defs" not in out["Twin"]
    assert out["Twin"]["properties"]["p"] == {"$ref": "#/components/schemas/Twin_point"}
    assert out["Twin_pair"]["items"] == {"$ref": "#/components/schemas/Twin_point"}
    assert "#/$defs" not in json.dumps(out)
