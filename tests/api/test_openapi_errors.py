"""The OpenAPI document describes the answers the service really sends (found by the fuzz run)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from cadastre.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = create_app(Settings(environment="test")).openapi()
    return doc


def test_validation_errors_are_documented_as_the_body_sent(
    client: TestClient, document: dict[str, Any]
) -> None:
    r = client.get("/licences/not-a-number/history")
    assert r.status_code == 422
    assert {"code", "detail", "field", "errors"} <= set(r.json())
    answer = document["paths"]["/licences/{licence_id}/history"]["get"]["responses"]["422"]
    assert answer["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_operation_documents_its_shared_errors(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "503" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"413", "422"} <= set(responses), (method, path)
            for status, answer in responses.items():
                if int(status) >= 400:
                    assert list(answer["content"]) == ["application/json"], (method, path, status)


def test_unknown_query_parameter_400_is_documented(
    client: TestClient, document: dict[str, Any]
) -> None:
    r = client.post("/licences", params={"nonsense": "1"}, json={})
    assert r.status_code == 400
    assert "400" in document["paths"]["/licences"]["post"]["responses"]


def test_json_answers_are_not_documented_as_strings(document: dict[str, Any]) -> None:
    patch = document["paths"]["/licences/{licence_id}"]["patch"]["responses"]["200"]
    schema = patch["content"]["application/geo+json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/LicenceDetailFeature"}


def test_reserved_areas_and_audit_document_their_media_types(
    client: TestClient, document: dict[str, Any]
) -> None:
    r = client.get("/reserved-areas")
    assert r.headers["content-type"].startswith("application/geo+json")
    assert list(document["paths"]["/reserved-areas"]["get"]["responses"]["200"]["content"]) == [
        "application/geo+json"
    ]
    audit = document["paths"]["/overlaps"]["get"]["responses"]["200"]["content"]
    assert {"application/geo+json", "text/csv"} <= set(audit)
    assert client.get("/overlaps").headers["content-type"].startswith("application/geo+json")


def test_405_allows_every_method_of_the_path(client: TestClient) -> None:
    # GET and PATCH are two routes; Starlette alone names only the first one's methods.
    r = client.request("OPTIONS", "/licences/1")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"GET", "PATCH"}
    r = client.request("PUT", "/survey/layers/x")
    assert set(r.headers["allow"].split(", ")) == {"GET", "DELETE", "PATCH"}
    # A concrete path wins over the template that also matches it.
    r = client.request("PUT", "/rasters/colormaps")
    assert r.headers["allow"] == "GET"
