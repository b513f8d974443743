"""The licence lifecycle through the API: every legal and illegal transition, and PATCH."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyproj
import pytest
import shapely
from fastapi.testclient import TestClient
from httpx import Response
from shapely.geometry import box, mapping, shape

from cadastre.domain.lifecycle import ACTIONS, TRANSITIONS

GEOD = pyproj.Geod(ellps="WGS84")
TZ = ZoneInfo("Asia/Karachi")

# Well inside each province (checked against the sample province polygons).
BA = (66.0, 29.0)  # Balochistan, UTM 42N
KP = (71.8, 34.3)  # Khyber Pakhtunkhwa, UTM 42N
PB = (72.5, 31.0)  # Punjab

D = 0.05  # side of the test squares, degrees


def square(lon: float, lat: float, dx: float = D, dy: float = D) -> dict[str, Any]:
    return mapping(box(lon, lat, lon + dx, lat + dy))  # type: ignore[no-any-return]


def geodesic_km2(geometry: dict[str, Any]) -> float:
    area, _ = GEOD.geometry_area_perimeter(shape(geometry))
    return abs(area) / 1e6


def apply(
    client: TestClient,
    *,
    at: tuple[float, float] = BA,
    licence_type: str = "exploration_licence",
    holder: Any = "Lifecycle Co",
    geometry: dict[str, Any] | None = None,
    **props: Any,
) -> dict[str, Any]:
    body = {
        "type": "Feature",
        "geometry": geometry or square(*at),
        "properties": {
            "licence_type": licence_type,
            "minerals": ["Copper"],
            "holder": holder,
            **props,
        },
    }
    r = client.post("/licences", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def act(client: TestClient, lid: int, action: str, crs: str | None = None, **body: Any) -> Response:
    params = {"crs": crs} if crs else None
    return client.post(
        f"/licences/{lid}/transitions", json={"action": action, **body}, params=params
    )


def ok(r: Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def read(client: TestClient, lid: int) -> dict[str, Any]:
    return ok(client.get(f"/licences/{lid}"))


def history(client: TestClient, lid: int) -> list[dict[str, Any]]:
    return ok(client.get(f"/licences/{lid}/history"))  # type: ignore[return-value]


GRANT = {"granted_on": "2024-01-01", "expires_on": "2027-01-01"}
PAST_GRANT = {"granted_on": "2019-01-01", "expires_on": "2022-01-01"}


def granted(client: TestClient, dates: dict[str, str] = GRANT, **kw: Any) -> dict[str, Any]:
    f = apply(client, **kw)
    return ok(act(client, f["id"], "grant", **dates))


def in_status(client: TestClient, status: str) -> dict[str, Any]:
    """A licence brought into ``status`` through the API."""
    if status == "applied":
        return apply(client)
    if status == "refused":
        return ok(act(client, apply(client)["id"], "refuse"))
    if status == "expired":
        f = granted(client, PAST_GRANT)
        return ok(act(client, f["id"], "expire"))
    f = granted(client, PAST_GRANT)
    if status == "granted":
        return f
    action = {"surrendered": "surrender", "cancelled": "cancel"}[status]
    return ok(act(client, f["id"], action))


def valid_args(action: str, at: tuple[float, float] = BA) -> dict[str, Any]:
    """Arguments that would make ``action`` acceptable apart from the licence's status."""
    lon, lat = at
    return {
        "grant": GRANT,
        "renew": {"expires_on": "2099-01-01"},
        "transfer": {"holder": "Somebody Else Ltd"},
        "relinquish": {"geometry": square(lon, lat, D / 2, D)},
    }.get(action, {})


def state(client: TestClient, lid: int) -> tuple[Any, ...]:
    p = read(client, lid)["properties"]
    return (
        p["status"],
        p["version"],
        p["expires_on"],
        p["holder_id"],
        p["area_km2"],
        len(history(client, lid)),
    )


# ----------------------------------------------------------------------------- grant


def test_grant_with_explicit_dates(client: TestClient) -> None:
    f = apply(client)
    g = ok(act(client, f["id"], "grant", granted_on="2024-02-01", expires_on="2028-02-01"))
    p = g["properties"]
    assert p["status"] == "granted"
    assert p["granted_on"] == "2024-02-01"
    assert p["expires_on"] == "2028-02-01"
    assert p["version"] == f["properties"]["version"] + 1


def test_grant_kp_exploration_licence_defaults_to_three_year_term(client: TestClient) -> None:
    f = apply(client, at=KP)
    assert f["properties"]["province_code"] == "PK-KP"
    p = ok(act(client, f["id"], "grant", granted_on="2024-03-15"))["properties"]
    assert p["granted_on"] == "2024-03-15"
    assert p["expires_on"] == "2027-03-15"


def test_grant_without_granted_on_is_today_plus_term(client: TestClient) -> None:
    f = apply(client, at=KP)
    p = ok(act(client, f["id"], "grant"))["properties"]
    today = datetime.now(TZ).date()
    assert p["granted_on"] == today.isoformat()
    assert date.fromisoformat(p["expires_on"]).year == today.year + 3


def test_grant_without_configured_term_needs_expires_on(client: TestClient) -> None:
    f = apply(client, at=BA)  # exploration_licence has no term in Balochistan
    r = act(client, f["id"], "grant", granted_on="2024-01-01")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "expires_on"
    assert "expires_on" in body["detail"]


def test_grant_expiry_must_follow_grant(client: TestClient) -> None:
    f = apply(client)
    r = act(client, f["id"], "grant", granted_on="2024-01-01", expires_on="2023-01-01")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "expires_on"


def test_grant_surface_mineral_lease_in_punjab_uses_five_year_term(client: TestClient) -> None:
    f = apply(client, at=PB, licence_type="surface_mineral_lease", minerals=["Silica sand"])
    p = ok(act(client, f["id"], "grant", granted_on="2024-05-01"))["properties"]
    assert p["expires_on"] == "2029-05-01"


# ----------------------------------------------------------------------------- renew


def test_renew_extends_expiry(client: TestClient) -> None:
    f = granted(client)
    p = ok(act(client, f["id"], "renew", expires_on="2030-01-01"))["properties"]
    assert p["status"] == "granted"
    assert p["expires_on"] == "2030-01-01"
    assert p["granted_on"] == GRANT["granted_on"]
    assert p["version"] == f["properties"]["version"] + 1


@pytest.mark.parametrize("expires_on", ["2027-01-01", "2026-06-30"])
def test_renew_must_extend_expiry(client: TestClient, expires_on: str) -> None:
    f = granted(client)
    before = state(client, f["id"])
    r = act(client, f["id"], "renew", expires_on=expires_on)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "expires_on"
    assert state(client, f["id"]) == before


def test_renew_without_expiry_uses_renewal_term(client: TestClient) -> None:
    f = apply(client, at=PB, licence_type="surface_mineral_lease", minerals=["Fireclay"])
    ok(act(client, f["id"], "grant", granted_on="2024-05-01"))
    p = ok(act(client, f["id"], "renew"))["properties"]
    assert p["expires_on"] == "2034-05-01"


def test_renew_without_expiry_or_configured_term_is_422(client: TestClient) -> None:
    f = granted(client)  # exploration_licence in Balochistan: no term configured
    r = act(client, f["id"], "renew")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "expires_on"


# -------------------------------------------------------------------------- transfer


def test_transfer_by_name(client: TestClient) -> None:
    f = granted(client)
    p = ok(act(client, f["id"], "transfer", holder="New Holder Ltd"))["properties"]
    assert p["status"] == "granted"
    assert p["holder"] == "New Holder Ltd"
    assert p["holder_id"] != f["properties"]["holder_id"]
    assert p["version"] == f["properties"]["version"] + 1


def test_transfer_by_party_id(client: TestClient) -> None:
    other = apply(client, at=KP, holder="Second Holder Co")
    party = other["properties"]["holder_id"]
    f = granted(client)
    p = ok(act(client, f["id"], "transfer", holder=party))["properties"]
    assert p["holder_id"] == party
    assert p["holder"] == "Second Holder Co"


def test_transfer_with_holder_details(client: TestClient) -> None:
    f = granted(client)
    holder = {"name": "Detailed Holder Pvt", "kind": "company", "country": "Pakistan"}
    p = ok(act(client, f["id"], "transfer", holder=holder))["properties"]
    assert p["holder"] == "Detailed Holder Pvt"


@pytest.mark.parametrize("same", ["id", "name", "name in other case"])
def test_transfer_to_same_holder_is_422(client: TestClient, same: str) -> None:
    f = granted(client)
    holder = {
        "id": f["properties"]["holder_id"],
        "name": "Lifecycle Co",
        "name in other case": "LIFECYCLE co",
    }[same]
    before = state(client, f["id"])
    r = act(client, f["id"], "transfer", holder=holder)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "holder"
    assert state(client, f["id"]) == before


def test_transfer_without_holder_is_422(client: TestClient) -> None:
    f = granted(client)
    r = act(client, f["id"], "transfer")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "holder"


def test_transfer_to_unknown_party_is_404(client: TestClient) -> None:
    f = granted(client)
    r = act(client, f["id"], "transfer", holder=987654321)
    assert r.status_code == 404, r.text


# ------------------------------------------------------------------------ relinquish


def test_relinquish_shrinks_area_to_retained_shape(client: TestClient) -> None:
    f = granted(client)
    retained = square(*BA, D / 2, D)
    p = ok(act(client, f["id"], "relinquish", geometry=retained))
    props = p["properties"]
    assert props["status"] == "granted"
    assert props["area_km2"] < f["properties"]["area_km2"]
    assert props["area_km2"] == pytest.approx(geodesic_km2(retained), rel=1e-4)
    kept = shape(retained)
    assert shape(p["geometry"]).symmetric_difference(kept).area < 1e-4 * kept.area
    assert props["version"] == f["properties"]["version"] + 1


def test_relinquish_in_utm(client: TestClient) -> None:
    f = granted(client)
    lon, lat = BA
    retained = box(lon + 0.01, lat + 0.01, lon + 0.04, lat + 0.04)
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True)
    utm = shapely.transform(retained, to_utm.transform, interleaved=False)
    p = ok(act(client, f["id"], "relinquish", crs="EPSG:32642", geometry=mapping(utm)))
    props = p["properties"]
    assert props["area_km2"] == pytest.approx(geodesic_km2(mapping(retained)), rel=1e-4)
    assert props["area_km2"] < f["properties"]["area_km2"]
    assert "32642" in props["submitted"]["crs"]
    back = shape(p["geometry"])
    assert back.symmetric_difference(retained).area < 1e-4 * retained.area


def test_relinquish_retained_partly_outside_is_422(client: TestClient) -> None:
    f = granted(client)
    lon, lat = BA
    before = state(client, f["id"])
    r = act(client, f["id"], "relinquish", geometry=square(lon + 0.02, lat, D, D / 2))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "geometry"
    assert state(client, f["id"]) == before


@pytest.mark.parametrize("grow", [0.0, 0.01])
def test_relinquish_retained_not_smaller_is_422(client: TestClient, grow: float) -> None:
    f = granted(client)
    lon, lat = BA
    before = state(client, f["id"])
    same_or_larger = square(lon - grow, lat - grow, D + 2 * grow, D + 2 * grow)
    r = act(client, f["id"], "relinquish", geometry=same_or_larger)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "geometry"
    assert state(client, f["id"]) == before


def test_relinquish_without_geometry_is_422(client: TestClient) -> None:
    f = granted(client)
    r = act(client, f["id"], "relinquish")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "geometry"


def test_geometry_with_other_action_is_422(client: TestClient) -> None:
    f = granted(client)
    r = act(client, f["id"], "renew", expires_on="2030-01-01", geometry=square(*BA, D / 2, D))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "geometry"


# ---------------------------------------------------------- final-state transitions


@pytest.mark.parametrize(
    ("action", "status"), [("surrender", "surrendered"), ("cancel", "cancelled")]
)
def test_granted_to_final_state(client: TestClient, action: str, status: str) -> None:
    f = granted(client)
    p = ok(act(client, f["id"], action, note=f"{action} by order"))["properties"]
    assert p["status"] == status
    assert p["version"] == f["properties"]["version"] + 1


def test_refuse_from_applied(client: TestClient) -> None:
    f = apply(client)
    p = ok(act(client, f["id"], "refuse"))["properties"]
    assert p["status"] == "refused"
    assert p["granted_on"] is None


def test_expire_after_expiry_date(client: TestClient) -> None:
    f = granted(client, PAST_GRANT)
    p = ok(act(client, f["id"], "expire"))["properties"]
    assert p["status"] == "expired"
    assert p["expires_on"] == PAST_GRANT["expires_on"]


@pytest.mark.parametrize("days_ahead", [0, 1, 365])
def test_expire_before_expiry_date_is_409(client: TestClient, days_ahead: int) -> None:
    today = datetime.now(TZ).date()
    expires_on = today + timedelta(days=days_ahead)
    f = granted(client, {"granted_on": "2020-01-01", "expires_on": expires_on.isoformat()})
    before = state(client, f["id"])
    r = act(client, f["id"], "expire")
    assert r.status_code == 409, r.text
    assert r.json()["field"] == "action"
    assert state(client, f["id"]) == before


# ------------------------------------------------------------------ illegal actions


def _illegal_cases() -> list[tuple[str, str]]:
    return [
        (status, action)
        for status, allowed in TRANSITIONS.items()
        for action in ACTIONS
        if action not in allowed
    ]


@pytest.mark.parametrize(("status", "action"), _illegal_cases())
def test_illegal_transition_is_409(client: TestClient, status: str, action: str) -> None:
    f = in_status(client, status)
    assert f["properties"]["status"] == status
    before = state(client, f["id"])
    r = act(client, f["id"], action, **valid_args(action))
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "illegal_transition"
    allowed = list(TRANSITIONS[status])
    assert body["where"]["current_status"] == status
    assert body["where"]["allowed_actions"] == allowed
    assert status in body["detail"]
    assert action in body["detail"]
    for a in allowed:
        assert a in body["detail"]
    assert state(client, f["id"]) == before


def test_illegal_cases_cover_grant_of_granted_and_renew_of_applied() -> None:
    cases = _illegal_cases()
    assert ("granted", "grant") in cases
    assert ("applied", "renew") in cases
    assert all(("expired", a) in cases for a in ACTIONS)


def test_unknown_action_is_422(client: TestClient) -> None:
    f = apply(client)
    before = state(client, f["id"])
    r = act(client, f["id"], "annex")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "action"
    assert state(client, f["id"]) == before


def test_transition_of_unknown_licence_is_404(client: TestClient) -> None:
    r = act(client, 987654321, "grant", **GRANT)
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["", "/history"])
def test_read_unknown_licence_is_404(client: TestClient, path: str) -> None:
    r = client.get(f"/licences/987654321{path}")
    assert r.status_code == 404, r.text


def test_patch_unknown_licence_is_404(client: TestClient) -> None:
    r = client.patch("/licences/987654321", json={"remarks": "x"})
    assert r.status_code == 404, r.text


# ------------------------------------------------------------------------------ PATCH


def test_patch_minerals_and_remarks(client: TestClient) -> None:
    f = apply(client, remarks="first")
    r = client.patch(
        f"/licences/{f['id']}",
        json={"minerals": ["Copper", "Gold"], "remarks": "second", "note": "corrected"},
    )
    p = ok(r)["properties"]
    assert p["minerals"] == ["Copper", "Gold"]
    assert p["remarks"] == "second"
    assert p["version"] == f["properties"]["version"] + 1
    last = history(client, f["id"])[-1]
    assert last["action"] == "update"
    assert last["version"] == p["version"]
    assert last["note"] == "corrected"
    assert last["before"] == {"minerals": ["Copper"], "remarks": "first"}
    assert last["after"] == {"minerals": ["Copper", "Gold"], "remarks": "second"}


def test_patch_one_field_records_only_that_field(client: TestClient) -> None:
    f = apply(client, remarks="keep")
    ok(client.patch(f"/licences/{f['id']}", json={"minerals": ["Chromite"]}))
    last = history(client, f["id"])[-1]
    assert last["before"] == {"minerals": ["Copper"]}
    assert last["after"] == {"minerals": ["Chromite"]}
    assert read(client, f["id"])["properties"]["remarks"] == "keep"


def test_patch_applied_on(client: TestClient) -> None:
    f = apply(client)
    p = ok(client.patch(f"/licences/{f['id']}", json={"applied_on": "2024-04-01"}))
    assert p["properties"]["applied_on"] == "2024-04-01"


@pytest.mark.parametrize(
    "body", [{"status": "granted"}, {"holder": "X"}, {"remarks": "x", "licence_no": "Z-1"}]
)
def test_patch_unknown_key_is_422(client: TestClient, body: dict[str, Any]) -> None:
    f = apply(client)
    before = state(client, f["id"])
    r = client.patch(f"/licences/{f['id']}", json=body)
    assert r.status_code == 422, r.text
    assert state(client, f["id"]) == before


def test_patch_minerals_null_is_422(client: TestClient) -> None:
    f = apply(client)
    r = client.patch(f"/licences/{f['id']}", json={"minerals": None})
    assert r.status_code == 422, r.text


def test_patch_without_real_change_writes_no_event(client: TestClient) -> None:
    f = apply(client, remarks="same")
    before = state(client, f["id"])
    r = client.patch(f"/licences/{f['id']}", json={"minerals": ["Copper"], "remarks": "same"})
    assert ok(r)["properties"]["version"] == f["properties"]["version"]
    assert state(client, f["id"]) == before


# ------------------------------------------------------------ versions and events count


def test_each_transition_adds_one_version_and_one_event(client: TestClient) -> None:
    f = apply(client)
    lid = f["id"]
    steps = [
        ("grant", GRANT),
        ("renew", {"expires_on": "2030-01-01"}),
        ("transfer", {"holder": "Chain Holder"}),
        ("relinquish", {"geometry": square(*BA, D / 2, D)}),
        ("surrender", {}),
    ]
    for n, (action, args) in enumerate(steps, start=2):
        p = ok(act(client, lid, action, **args))["properties"]
        assert p["version"] == n
        events = history(client, lid)
        assert len(events) == n
        assert events[-1]["action"] == action
        assert events[-1]["version"] == n
