"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Every operation of ``/openapi.json`` gets generated requests, valid and invalid, and every
answer must be below 500 and conform to the document (status code documented, body matching
its schema, content type as declared). Requests go to the app in-process through the test's
``client``: the database is the test's rolled-back transaction, so the fuzz writes nothing
that outlives the test. Bounded: a fixed number of examples per operation, fixed seed, no
shrinking beyond Hypothesis's defaults and no deadline (a tile can take a moment to draw).
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from cadastre.settings import Settings

#: Examples per operation in the fuzzing phase (the examples and coverage phases add their own,
#: bounded by the schema). About 40 operations; the whole run stays well under two minutes.
MAX_EXAMPLES = 25

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20260601,
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)

REQUEST_ARGUMENTS = {"method", "url", "headers", "files", "data", "params", "cookies", "json"}

# The document is the app's own; building it needs no database.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(environment="test")).openapi(), config=CONFIG
)


def _send(client: TestClient, case: Any) -> Any:
    """Send a generated case through the test's client and return the response.

    The case is encoded exactly as schemathesis encodes it (with ``requests``: JSON, raw and
    multipart bodies, cookies), then sent byte for byte through the test's httpx client.
    """
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    prepared = requests.Request(
        **{k: v for k, v in kwargs.items() if k in REQUEST_ARGUMENTS}
    ).prepare()
    response = client.request(
        str(prepared.method),
        str(prepared.url),
        content=prepared.body,
        headers=dict(prepared.headers),
    )
    response.request.read()
    return response


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)
def test_api_fuzz(case: Any, client: TestClient) -> None:
    response = _send(client, case)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    # Every check schemathesis has, but one: ``positive_data_acceptance`` expects any request
    # the document allows to succeed, and the document cannot say the domain's rules (a shape
    # in Pakistan, a licence type that exists, a raster file GDAL can read). Refusing such a
    # request is a 4xx the other checks still hold to the document.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


def test_fuzz_covers_every_operation() -> None:
    # Nothing is excluded: every documented operation is fuzzed.
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    paths = create_app(Settings(environment="test")).openapi()["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    assert operations == documented
    assert len(operations) > 30


pytestmark = pytest.mark.slow
