"""Hostile and careless input: every refusal is a 4xx that names the problem, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

TABLES = ("licences", "licence_versions", "licence_events", "parties", "licence_conflicts")


def rect(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def application(geometry: dict[str, Any] | None = None, **props: Any) -> dict[str, Any]:
    base = {"licence_type": "exploration_licence", "minerals": ["Copper"], "holder": "Hostile Co"}
    return {
        "type": "Feature",
        "geometry": geometry or rect(66.0, 28.0, 66.05, 28.05),
        "properties": {**base, **props},
    }


def counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def refused(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert field in (body.get("field") or ""), body
    assert body["detail"], body
    return body


def create(client: TestClient, **props: Any) -> dict[str, Any]:
    r = client.post("/licences", json=application(**props))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"holder": "Nul\u0000Co"}, "properties.holder"),
        ({"minerals": ["Cu\u0000"]}, "properties.minerals"),
        ({"remarks": "a\u0000b"}, "properties.remarks"),
        ({"province": "\u0000"}, "properties.province"),
    ],
)
def test_nul_characters_are_refused(
    client: TestClient, conn: Connection, props: dict[str, Any], field: str
) -> None:
    before = counts(conn)
    refused(client.post("/licences", json=application(**props)), field)
    assert counts(conn) == before


@pytest.mark.parametrize("param", ["mineral", "holder", "province"])
def test_nul_in_a_filter_is_refused(client: TestClient, param: str) -> None:
    refused(client.get("/licences", params={param: "a\u0000"}), param, status=400)


def test_nul_in_patch_is_refused(client: TestClient, conn: Connection) -> None:
    lid = create(client)["id"]
    before = counts(conn)
    refused(client.patch(f"/licences/{lid}", json={"remarks": "x\u0000"}), "remarks")
    assert counts(conn) == before


def test_holder_true_is_not_party_one(client: TestClient, conn: Connection) -> None:
    create(client)  # there is a party 1 (or some party) to be confused with
    before = counts(conn)
    refused(client.post("/licences", json=application(holder=True)), "properties.holder")
    assert counts(conn) == before


def test_holder_object_error_names_its_own_field(client: TestClient) -> None:
    holder = {"name": "Owners Co", "beneficial_owners": [{"name": "A", "share_pct": 101}]}
    body = refused(client.post("/licences", json=application(holder=holder)), "share_pct")
    assert "int" not in body["field"]


def test_applicant_cannot_choose_the_licence_number(client: TestClient, conn: Connection) -> None:
    before = counts(conn)
    r = client.post("/licences", json=application(licence_no="BA-EL-2026-000001"))
    refused(r, "properties.licence_no")
    assert counts(conn) == before


def test_applied_on_in_the_future_is_refused(client: TestClient) -> None:
    refused(client.post("/licences", json=application(applied_on="2999-01-01")), "applied_on")


def test_as_of_past_the_last_date_is_refused(client: TestClient) -> None:
    refused(client.get("/licences", params={"as_of": "9999-12-31"}), "as_of")


def test_as_of_year_one_is_an_empty_register(client: TestClient) -> None:
    create(client)
    r = client.get("/licences", params={"as_of": "0001-01-01T00:00:00+05:00"})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == 0


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+05:00"])
def test_extreme_received_at_in_a_check_is_refused(client: TestClient, when: str) -> None:
    body = application(received_at=when)
    del body["properties"]["holder"]
    refused(client.post("/overlaps/check", json=body), "received_at")


def test_transition_argument_the_action_does_not_take_is_refused(
    client: TestClient, conn: Connection
) -> None:
    lid = create(client)["id"]
    before = counts(conn)
    r = client.post(
        f"/licences/{lid}/transitions", json={"action": "refuse", "expires_on": "2030-01-01"}
    )
    body = refused(r, "expires_on")
    assert "refuse" in body["detail"]
    assert counts(conn) == before


def test_grant_in_the_future_is_refused(client: TestClient) -> None:
    lid = create(client)["id"]
    r = client.post(
        f"/licences/{lid}/transitions",
        json={"action": "grant", "granted_on": "2999-01-01", "expires_on": "3001-01-01"},
    )
    refused(r, "granted_on")


def test_term_beyond_99_years_is_refused(client: TestClient) -> None:
    lid = create(client)["id"]
    r = client.post(
        f"/licences/{lid}/transitions",
        json={"action": "grant", "granted_on": "2020-01-01", "expires_on": "2200-01-01"},
    )
    refused(r, "expires_on")


def test_relinquish_cannot_grow_the_title_by_a_sliver(client: TestClient) -> None:
    lid = create(client, geometry=None)["id"]
    client.post(
        f"/licences/{lid}/transitions",
        json={"action": "grant", "granted_on": "2024-01-01", "expires_on": "2027-01-01"},
    ).raise_for_status()
    # Retain most of the ground but push one edge ~5 m outside: ~5 m x 5.5 km = 27,000 m².
    sliver = rect(66.0, 28.0, 66.04, 28.05 + 0.00005)
    r = client.post(
        f"/licences/{lid}/transitions", json={"action": "relinquish", "geometry": sliver}
    )
    body = refused(r, "geometry")
    assert "outside" in body["detail"]


def test_no_next_link_when_the_last_page_is_exactly_full(client: TestClient) -> None:
    for i in range(2):
        create(
            client,
            holder=f"Page Co {i}",
            geometry=rect(66.1 + i * 0.1, 28.0, 66.15 + i * 0.1, 28.05),
        )
    r = client.get("/licences", params={"limit": 2})
    page = r.json()
    assert page["numberReturned"] == 2
    assert [link["rel"] for link in page["links"]] == ["self"]


def test_fully_encumbered_candidate_has_null_available_geometry(
    client: TestClient, conn: Connection
) -> None:
    lid = create(client)["id"]
    client.post(
        f"/licences/{lid}/transitions",
        json={"action": "grant", "granted_on": "2024-01-01", "expires_on": "2027-01-01"},
    ).raise_for_status()
    body = application(geometry=rect(66.01, 28.01, 66.02, 28.02))
    del body["properties"]["holder"]
    check = client.post("/overlaps/check", json=body).json()
    assert check["available"]["geometry"] is None
    assert check["available"]["properties"]["area_km2"] == 0
    # Reserved-area and title items keep every documented key, null or not.
    assert {"holder", "status"} <= set(check["conflicts"][0])


def test_check_takes_a_bare_geometry_with_query_properties(client: TestClient) -> None:
    geometry = rect(66.2, 28.2, 66.25, 28.25)
    params = {"licence_type": "exploration_licence", "minerals": "Copper,Gold"}
    bare = client.post("/overlaps/check", params=params, json=geometry)
    assert bare.status_code == 200, bare.text
    feature = application(geometry=geometry, minerals=["Copper", "Gold"])
    del feature["properties"]["holder"]
    full = client.post("/overlaps/check", json=feature).json()
    assert bare.json()["candidate"]["area_km2"] == full["candidate"]["area_km2"]
    assert bare.json()["candidate"]["province_code"] == "PK-BA"


def test_check_bare_geometry_without_minerals_names_them(client: TestClient) -> None:
    r = client.post(
        "/overlaps/check",
        params={"licence_type": "exploration_licence"},
        json=rect(66.2, 28.2, 66.25, 28.25),
    )
    refused(r, "minerals")


def test_check_properties_given_twice_is_refused(client: TestClient) -> None:
    feature = application()
    del feature["properties"]["holder"]
    r = client.post("/overlaps/check", params={"licence_type": "mining_lease"}, json=feature)
    refused(r, "licence_type")


def test_check_names_the_province_of_a_shape_too_large_for_its_type(client: TestClient) -> None:
    # A Punjab mining lease over the 250 km² limit: refused, but the province is known.
    big = rect(72.0, 30.0, 72.2, 30.2)
    r = client.post(
        "/overlaps/check", params={"licence_type": "mining_lease", "minerals": "Salt"}, json=big
    )
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["admissible"] is False
    assert [x["code"] for x in body["reasons"]] == ["area_limit_exceeded"]
    assert body["candidate"]["province_code"] == "PK-PB"
